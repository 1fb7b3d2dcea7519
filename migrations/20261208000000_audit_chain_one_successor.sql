-- Each audit record may have one successor: no two records name the same prev_hash. The chain could
-- not fork before either (appends took an advisory lock and read the head inside it), but that cost
-- five round trips per append. With this index an append is one INSERT naming the head the instance
-- last wrote or read; if another instance appended since, the INSERT is refused (23505) and the
-- instance reads the head again and retries (src/storage/sql/audit-store.ts).
CREATE UNIQUE INDEX audit_event_prev_hash_key ON audit_event (prev_hash);

-- Configuration drift between the instances of one deployment (every instance on this database):
-- each records the hash of its effective configuration and a heartbeat; instances seen recently
-- with different hashes are drift. A row is one process; stale rows are ignored, then pruned.
CREATE TABLE moat_instance (
  instance_id  text        PRIMARY KEY,
  config_hash  text        NOT NULL,
  hostname     text        NOT NULL,
  pid          integer     NOT NULL,
  started_at   timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL
);
CREATE INDEX moat_instance_last_seen_idx ON moat_instance (last_seen_at);

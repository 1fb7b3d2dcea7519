-- The security audit log: append-only, each record chained to the one before by a SHA-256 hash
-- (hash = SHA-256(prev_hash || canonical JSON of the record)), so a changed, removed or inserted
-- record breaks the chain where it happened; `moat audit verify` walks it. Updates and deletes are
-- refused by the database itself.
CREATE TABLE audit_event (
  seq         bigserial   PRIMARY KEY,
  at          timestamptz NOT NULL,
  type        text        NOT NULL,
  actor       text        NOT NULL,
  actor_id    text,
  client_id   text,
  org_id      text,
  customer_id text,
  subject     text,
  detail      jsonb       NOT NULL DEFAULT '{}',
  prev_hash   text        NOT NULL,
  hash        text        NOT NULL UNIQUE
);
CREATE INDEX audit_event_client_idx ON audit_event (client_id, seq);
CREATE INDEX audit_event_org_idx ON audit_event (org_id, seq);
CREATE INDEX audit_event_customer_idx ON audit_event (customer_id, seq);
CREATE INDEX audit_event_at_idx ON audit_event (at);

CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_event is append-only';
END;
$$;
CREATE TRIGGER audit_event_no_update BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();

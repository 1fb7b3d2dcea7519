-- A client quarantined, stepped up or released (client_restriction, migrations/20261130000000_threats.sql)
-- is announced like any other change to a client (migrations/20261206500000_cache_invalidation.sql):
-- every instance re-reads the restrictions in force as soon as it hears it, instead of at its next
-- periodic refresh, so a quarantine made on one instance is enforced on all of them at once.
CREATE OR REPLACE FUNCTION moat_announce_client_restriction_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('moat_invalidate', 'client:' || OLD.client_id); END IF;
  IF TG_OP <> 'DELETE' THEN PERFORM pg_notify('moat_invalidate', 'client:' || NEW.client_id); END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS client_restriction_changed ON client_restriction;
CREATE TRIGGER client_restriction_changed AFTER INSERT OR UPDATE OR DELETE ON client_restriction
  FOR EACH ROW EXECUTE FUNCTION moat_announce_client_restriction_change();

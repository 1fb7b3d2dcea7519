-- Grants join the announced rows (src/caching/): introspection keeps the Grant of each token it is
-- asked about in memory (src/storage/introspection-grant-cache.ts), so a grant saved or deleted by
-- any instance, the moat CLI or SQL is announced as 'grant:<id>' at commit, as a client is.
-- Refresh tokens, the table's other frequent writes, still announce nothing.

CREATE OR REPLACE FUNCTION moat_announce_model_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.model IN ('Client', 'Grant') THEN
    PERFORM pg_notify('moat_invalidate', lower(OLD.model) || ':' || OLD.id);
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.model IN ('Client', 'Grant') THEN
    PERFORM pg_notify('moat_invalidate', lower(NEW.model) || ':' || NEW.id);
  END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS oidc_model_client_changed ON oidc_model;
DROP TRIGGER IF EXISTS oidc_model_changed ON oidc_model;
CREATE TRIGGER oidc_model_changed AFTER INSERT OR UPDATE OR DELETE ON oidc_model
  FOR EACH ROW EXECUTE FUNCTION moat_announce_model_change();
DROP FUNCTION IF EXISTS moat_announce_client_change();

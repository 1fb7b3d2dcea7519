-- Cross-instance cache invalidation (src/caching/): every instance keeps clients, certificate
-- statuses and consents by grant in memory, and forgets one when Postgres announces its change on
-- the channel moat_invalidate as '<topic>:<key>'. Triggers rather than application code announce
-- it, so a change made by any instance, the moat CLI or an operator's SQL reaches every instance,
-- at commit (NOTIFY is transactional: a rolled-back change announces nothing).

CREATE OR REPLACE FUNCTION moat_announce_client_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.model = 'Client' THEN PERFORM pg_notify('moat_invalidate', 'client:' || OLD.id); END IF;
  IF TG_OP <> 'DELETE' AND NEW.model = 'Client' THEN PERFORM pg_notify('moat_invalidate', 'client:' || NEW.id); END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS oidc_model_client_changed ON oidc_model;
-- Only client rows: grants and refresh tokens (most of this table's writes) announce nothing.
CREATE TRIGGER oidc_model_client_changed AFTER INSERT OR UPDATE OR DELETE ON oidc_model
  FOR EACH ROW EXECUTE FUNCTION moat_announce_client_change();

CREATE OR REPLACE FUNCTION moat_announce_certificate_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('moat_invalidate', 'certificate:' || OLD.thumbprint); END IF;
  IF TG_OP <> 'DELETE' THEN PERFORM pg_notify('moat_invalidate', 'certificate:' || NEW.thumbprint); END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS tpp_certificate_changed ON tpp_certificate;
CREATE TRIGGER tpp_certificate_changed AFTER INSERT OR UPDATE OR DELETE ON tpp_certificate
  FOR EACH ROW EXECUTE FUNCTION moat_announce_certificate_change();

CREATE OR REPLACE FUNCTION moat_announce_consent_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.grant_id IS NOT NULL THEN PERFORM pg_notify('moat_invalidate', 'consent-grant:' || OLD.grant_id); END IF;
  IF TG_OP <> 'DELETE' AND NEW.grant_id IS NOT NULL THEN PERFORM pg_notify('moat_invalidate', 'consent-grant:' || NEW.grant_id); END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS consent_changed ON consent;
CREATE TRIGGER consent_changed AFTER INSERT OR UPDATE OR DELETE ON consent
  FOR EACH ROW EXECUTE FUNCTION moat_announce_consent_change();

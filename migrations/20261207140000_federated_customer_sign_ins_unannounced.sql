-- A bank IdP's customer signing in rewrites its row (federated-customer-directory.ts, `record`) to
-- move last_seen_at, and the trigger of 20261207100000 announced every such UPDATE: each federated
-- sign-in emptied that customer's entry on every instance. Instances keep only the id and the name
-- (src/customers/cached-customer-directory.ts), so an UPDATE is announced when the id, the name or
-- the issuer changed; inserts and deletes always are.

DROP TRIGGER IF EXISTS federated_customer_changed ON federated_customer;
CREATE TRIGGER federated_customer_changed AFTER INSERT OR DELETE ON federated_customer
  FOR EACH ROW EXECUTE FUNCTION moat_announce_customer_change();
DROP TRIGGER IF EXISTS federated_customer_updated ON federated_customer;
CREATE TRIGGER federated_customer_updated AFTER UPDATE ON federated_customer
  FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.name IS DISTINCT FROM NEW.name OR OLD.issuer IS DISTINCT FROM NEW.issuer)
  EXECUTE FUNCTION moat_announce_customer_change();

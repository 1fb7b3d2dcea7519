-- Customers join the announced rows (src/caching/): every token an authorization code or refresh
-- token issues reads its customer (a customer the bank removed gets no more tokens), and each
-- instance keeps that read in memory (src/customers/cached-customer-directory.ts). So a customer
-- added, changed or removed by an instance, the moat CLI or an operator's SQL is announced as
-- 'customer:<id>' at commit, in either directory: the built-in one and the bank IdP's.
-- Added too, since a lookup that found nothing is kept as well. (Postgres sends one notification for
-- identical payloads of one transaction, so an UPDATE announces its id once.)

CREATE OR REPLACE FUNCTION moat_announce_customer_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify('moat_invalidate', 'customer:' || OLD.id);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM pg_notify('moat_invalidate', 'customer:' || NEW.id);
  END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS customer_changed ON customer;
CREATE TRIGGER customer_changed AFTER INSERT OR UPDATE OR DELETE ON customer
  FOR EACH ROW EXECUTE FUNCTION moat_announce_customer_change();
DROP TRIGGER IF EXISTS federated_customer_changed ON federated_customer;
CREATE TRIGGER federated_customer_changed AFTER INSERT OR UPDATE OR DELETE ON federated_customer
  FOR EACH ROW EXECUTE FUNCTION moat_announce_customer_change();

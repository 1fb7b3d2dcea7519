-- Moat's own second factor for customers of the bank's identity provider (customers.source: oidc,
-- issue 17): a payment needs an authentication linked to its amount and payee (PSD2 RTS on SCA,
-- Art. 5), which an upstream login cannot give, and a login the bank does not count as SCA is stepped
-- up (Art. 4). Those customers enrol a one-time-code app with Moat under the id the IdP vouches for,
-- and that id is in federated_customer, not customer. The one-time-code tables therefore stop
-- referring to customer, as passkey_credential never did; a customer's factors are removed through
-- the dashboard or the admin API (both audited), never by a cascade.
ALTER TABLE customer_totp DROP CONSTRAINT IF EXISTS customer_totp_customer_id_fkey;
ALTER TABLE customer_totp_used_step DROP CONSTRAINT IF EXISTS customer_totp_used_step_customer_id_fkey;

-- Customers who sign in at the bank's own OpenID Provider (customers.source: oidc). Moat does not
-- hold their credentials: a row records the id the IdP's configured claim gave, the name to show on
-- the consent page and the dashboard, and when they were first and last seen, so consents, grants
-- and the dashboard find the customer between sign-ins. The id is the IdP's, so it is never reused
-- for another person by Moat; the issuer is kept to tell which IdP vouched for it.
CREATE TABLE IF NOT EXISTS federated_customer (
  id            text        PRIMARY KEY,
  issuer        text        NOT NULL,
  name          text        NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now()
);

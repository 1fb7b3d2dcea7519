-- When the TPP last used each consent, for the customer's dashboard (issue 18 point 6): the last
-- token issued, token introspected, gateway check allowed or sandbox API call Moat saw for it.
-- Written at most once a minute per consent and off the request's path (src/consents/consent-use.ts),
-- in a table of its own: the consent row keeps its meaning (what was agreed, its lifecycle) and is
-- not rewritten, nor announced to every instance's cache (cache_invalidation), on every use.
CREATE TABLE IF NOT EXISTS consent_use (
  consent_id    text        PRIMARY KEY REFERENCES consent (id) ON DELETE CASCADE,
  last_used_at  timestamptz NOT NULL
);

-- What oidc-provider must keep across restarts: clients, grants, refresh tokens, registration
-- access tokens. One table keyed by (model, id) like oidc-provider's own adapters, with the
-- lookups the adapter needs indexed: by grant (revokeByGrantId must not scan), by uid and user code,
-- and by expiry for the purge job. Short-lived models live in Redis, not here.
CREATE TABLE oidc_model (
  model       text        NOT NULL,
  id          text        NOT NULL,
  payload     jsonb       NOT NULL,
  grant_id    text,
  uid         text,
  user_code   text,
  expires_at  timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (model, id)
);

CREATE INDEX oidc_model_grant_idx ON oidc_model (model, grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_model_uid_idx ON oidc_model (model, uid) WHERE uid IS NOT NULL;
CREATE INDEX oidc_model_user_code_idx ON oidc_model (model, user_code) WHERE user_code IS NOT NULL;
CREATE INDEX oidc_model_expires_idx ON oidc_model (expires_at) WHERE expires_at IS NOT NULL;

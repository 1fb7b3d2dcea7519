-- Open Banking consents: what a TPP asked for (an intent lodged through the consent API, or RFC 9396
-- authorization_details in the authorization request), what the customer granted, and every status
-- transition. The customer's accounts, so consent screens can offer a selection.
CREATE TABLE customer_account (
  id           text        PRIMARY KEY,
  customer_id  text        NOT NULL REFERENCES customer (id) ON DELETE CASCADE,
  nickname     text        NOT NULL,
  account_type text        NOT NULL,
  currency     text        NOT NULL,
  -- The account's identification as TPPs name it (UK.OBIE.SortCodeAccountNumber or UK.OBIE.IBAN).
  scheme_name  text        NOT NULL,
  identification text      NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (scheme_name, identification)
);
CREATE INDEX customer_account_customer_idx ON customer_account (customer_id);

CREATE TABLE consent (
  id                text        PRIMARY KEY,
  -- account_access | domestic_payment | scope (a plain scope authorization without details)
  kind              text        NOT NULL,
  -- intent (consent API) | authorization_details (RFC 9396) | scope
  origin            text        NOT NULL,
  client_id         text        NOT NULL,
  status            text        NOT NULL,
  customer_id       text,
  grant_id          text,
  -- What the TPP asked for and what the customer granted, as authorization_details objects.
  requested         jsonb       NOT NULL,
  granted           jsonb,
  scope             text        NOT NULL DEFAULT '',
  expires_at        timestamptz,
  idempotency_key   text,
  request_hash      text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  status_updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX consent_idempotency_idx ON consent (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX consent_customer_idx ON consent (customer_id);
CREATE INDEX consent_grant_idx ON consent (grant_id);
CREATE INDEX consent_expiry_idx ON consent (expires_at) WHERE status = 'Authorised';

-- Append-only: one row per transition, with who made it.
CREATE TABLE consent_event (
  id          bigserial   PRIMARY KEY,
  consent_id  text        NOT NULL REFERENCES consent (id),
  from_status text,
  to_status   text        NOT NULL,
  actor       text        NOT NULL,
  actor_id    text,
  reason      text,
  at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_event_consent_idx ON consent_event (consent_id, id);

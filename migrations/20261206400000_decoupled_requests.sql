-- Decoupled authorisation (OpenID Connect CIBA): the requests a TPP sent for a customer to approve on
-- the bank's own app. oidc-provider keeps the protocol state (the auth_req_id, its lifetime, the
-- result) in its short-lived store; this table is the bank app's inbox: which customer has which
-- request waiting, what the TPP asked and the binding message to show. A request is decided once:
-- the status moves from pending to approved or denied in one conditional update, so two devices
-- approving at once record one decision.
CREATE TABLE decoupled_request (
  id               text        PRIMARY KEY,
  client_id        text        NOT NULL,
  customer_id      text        NOT NULL,
  scope            text        NOT NULL,
  binding_message  text,
  requested        jsonb,
  intent_id        text,
  -- The id the consent has (the intent) or will be created with: a payment's SCA is linked to it.
  consent_id       text        NOT NULL,
  status           text        NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
  created_at       timestamptz NOT NULL,
  expires_at       timestamptz NOT NULL,
  decided_at       timestamptz
);
CREATE INDEX decoupled_request_customer_idx ON decoupled_request (customer_id, status, expires_at);

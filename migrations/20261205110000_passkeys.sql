-- Passkeys: the customers' WebAuthn credentials (issue 16, SCA). Only public material is kept: the
-- credential's COSE public key and the signature counter a cloned authenticator would betray
-- (WebAuthn L2 §6.1.1). customer_id is not a foreign key: a bank with its own identity provider
-- leaves the customer table empty and still enrols passkeys for its customers' subjects.
CREATE TABLE IF NOT EXISTS passkey_credential (
  -- The credential id as the authenticator gave it, base64url (WebAuthn L2 §5.1 rawId).
  id           text        PRIMARY KEY,
  customer_id  text        NOT NULL,
  public_key   bytea       NOT NULL,
  sign_count   bigint      NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
  transports   text[]      NOT NULL DEFAULT '{}',
  -- singleDevice: bound to one authenticator; multiDevice: may be synced (BE flag, L3 §6.1).
  device_type  text        NOT NULL CHECK (device_type IN ('singleDevice', 'multiDevice')),
  backed_up    boolean     NOT NULL,
  aaguid       text        NOT NULL,
  name         text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz
);
CREATE INDEX IF NOT EXISTS passkey_credential_customer_idx ON passkey_credential (customer_id);

-- The WebAuthn user handle per customer: random, so no customer identifier is written into an
-- authenticator (WebAuthn L2 §14.6.1), and stable, so one authenticator keeps one passkey per customer.
CREATE TABLE IF NOT EXISTS passkey_user_handle (
  customer_id text PRIMARY KEY,
  user_handle text NOT NULL UNIQUE
);

-- Strong customer authentication (PSD2 RTS on SCA, Commission Delegated Regulation (EU) 2018/389).
--
-- How and when the customer was authenticated for a consent: Art. 10a limits account access without
-- a new SCA to a configured number of days counted from sca_auth_time, and for a payment the
-- authentication must be linked to its amount and payee (Art. 5): sca_link holds the values the
-- customer saw while authenticating, sca_link_hash their canonical SHA-256 (src/sca/dynamic-linking.ts).
ALTER TABLE consent ADD COLUMN IF NOT EXISTS sca_acr text;
ALTER TABLE consent ADD COLUMN IF NOT EXISTS sca_amr jsonb;
ALTER TABLE consent ADD COLUMN IF NOT EXISTS sca_auth_time timestamptz;
ALTER TABLE consent ADD COLUMN IF NOT EXISTS sca_link jsonb;
ALTER TABLE consent ADD COLUMN IF NOT EXISTS sca_link_hash text;

-- A customer's RFC 6238 authenticator. The shared secret is encrypted at rest (AES-256-GCM with the
-- configured sca.totp.encryptionKey): a database dump alone cannot mint codes. An enrolment is
-- pending (confirmed_at NULL) until the customer proves the app computes the codes.
CREATE TABLE IF NOT EXISTS customer_totp (
  customer_id      text        PRIMARY KEY REFERENCES customer (id) ON DELETE CASCADE,
  secret_encrypted text        NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  confirmed_at     timestamptz
);

-- RFC 6238 §5.2: a code accepted once must not be accepted again. The time step a code was accepted
-- for is claimed by inserting it; the primary key makes a concurrent second use fail.
CREATE TABLE IF NOT EXISTS customer_totp_used_step (
  customer_id text        NOT NULL REFERENCES customer (id) ON DELETE CASCADE,
  time_step   bigint      NOT NULL,
  used_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, time_step)
);

-- Moat's signing keys kept where every instance reads them (keys.source: database), so a rotation
-- reaches every instance without a restart (issue 21). A key is published from created_at; a `next`
-- key signs from activate_at; a retired key is published until everything it signed has expired,
-- then its row is deleted. The private JWK is sealed with the configured key-encryption key
-- (AES-256-GCM, the kid bound in), so a copy of this table alone signs nothing.
CREATE TABLE signing_key (
  kid                text        PRIMARY KEY,
  alg                text        NOT NULL,
  state              text        NOT NULL CHECK (state IN ('next', 'active', 'retired')),
  public_jwk         jsonb       NOT NULL,
  private_jwk_sealed text        NOT NULL,
  created_at         timestamptz NOT NULL,
  activate_at        timestamptz,
  activated_at       timestamptz,
  retired_at         timestamptz
);
-- One signing key per algorithm, whatever two instances attempt at once.
CREATE UNIQUE INDEX signing_key_one_active_idx ON signing_key (alg) WHERE state = 'active';

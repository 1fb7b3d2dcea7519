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

-- Every change announced on the channel of cache invalidation (src/caching/invalidation.ts), at
-- commit, whoever made it — an instance's schedule or `moat keys rotate`: each instance reloads
-- its keys at once rather than at its next periodic check.
CREATE FUNCTION signing_key_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('moat_invalidate', 'signing-keys:changed');
  RETURN NULL;
END;
$$;
CREATE TRIGGER signing_key_changed AFTER INSERT OR UPDATE OR DELETE ON signing_key
  FOR EACH STATEMENT EXECUTE FUNCTION signing_key_announce();

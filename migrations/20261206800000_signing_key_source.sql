-- Signing keys in the bank's HSM (keys.source pkcs11 with keys.rotation.every) rotate on the same
-- schedule as the database's, coordinated through this table (issue 21): a row per token key holds
-- its lifecycle (the private key stays in the token, private_jwk_sealed is empty). `source` keeps
-- the two apart, so switching keys.source never mixes a token's keys with sealed ones.
ALTER TABLE signing_key ADD COLUMN source text NOT NULL DEFAULT 'database' CHECK (source IN ('database', 'pkcs11'));
DROP INDEX signing_key_one_active_idx;
CREATE UNIQUE INDEX signing_key_one_active_idx ON signing_key (source, alg) WHERE state = 'active';

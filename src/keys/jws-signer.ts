import { importJWK, SignJWT, type JWTPayload } from 'jose';
import type { SigningAlgorithm } from '../config/schema.ts';
import type { StoredKey } from './signing-keys.ts';

/*
 * Signing for what Moat itself sends (Security Event Tokens to TPPs), with the same keys it
 * publishes at its jwks_uri: a receiver verifies with the JWKS it already trusts for ID tokens.
 */

export interface JwsSigner {
  /** The kid and alg a JWS from this signer carries. */
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  sign(claims: JWTPayload, typ: string): Promise<string>;
}

/** Signs with the active key of the first configured algorithm (the one ID tokens default to). */
export async function createJwsSigner(keys: readonly StoredKey[], algorithms: readonly SigningAlgorithm[]): Promise<JwsSigner> {
  const alg = algorithms[0]!;
  const stored = keys.find((k) => k.alg === alg && k.moat_state === 'active');
  if (stored === undefined) throw new Error(`no active ${alg} signing key`);
  const { moat_state: _s, moat_created_at: _c, moat_retired_at: _r, key_ops: _o, ...jwk } = stored;
  const key = await importJWK(jwk, alg);
  return {
    kid: stored.kid,
    alg,
    sign: (claims, typ) => new SignJWT(claims).setProtectedHeader({ alg, kid: stored.kid, typ }).sign(key),
  };
}

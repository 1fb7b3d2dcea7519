import { base64url, importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';

/*
 * Signing for what Moat itself sends (Security Event Tokens to TPPs), with the key set it hands
 * oidc-provider and publishes at its jwks_uri: a receiver verifies with the JWKS it already trusts
 * for ID tokens. A key is either a private JWK (keys/jwks.json) or a key that signs for itself (an
 * HSM key behind oidc-provider's ExternalSigningKey), whose private half Moat never holds.
 */

/** A key that signs a JWS signing input itself (RFC 7515 §5.1 step 5), as oidc-provider's ExternalSigningKey does. */
export interface SelfSigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly key_ops?: string[] | undefined;
  sign(data: Uint8Array): Promise<Uint8Array>;
}

export interface JwsSigner {
  /** The kid and alg a JWS from this signer carries. */
  readonly kid: string;
  readonly alg: string;
  sign(claims: JWTPayload, typ: string): Promise<string>;
}

function selfSigning(key: JWK | SelfSigningKey): key is SelfSigningKey {
  return typeof (key as SelfSigningKey).sign === 'function';
}

/**
 * Signs with an active key (one without `key_ops: ["verify"]`) of the preferred algorithm, else the
 * first active key: the key set oidc-provider signs ID tokens with.
 */
export async function createJwsSigner(jwks: { keys: readonly (JWK | SelfSigningKey)[] }, preferredAlg?: string): Promise<JwsSigner> {
  const active = jwks.keys.filter((k) => !(k.key_ops ?? []).includes('verify') || (k.key_ops ?? []).includes('sign'));
  const key = active.find((k) => k.alg === preferredAlg) ?? active[0];
  if (key === undefined || typeof key.kid !== 'string' || typeof key.alg !== 'string') throw new Error('no active signing key');
  const { kid, alg } = key as { kid: string; alg: string };
  if (selfSigning(key)) {
    const encoder = new TextEncoder();
    return {
      kid,
      alg,
      // RFC 7515 §7.1 compact serialisation; jose does the encoding, the key's holder the signature.
      async sign(claims, typ) {
        const input = `${base64url.encode(JSON.stringify({ alg, kid, typ }))}.${base64url.encode(JSON.stringify(claims))}`;
        return `${input}.${base64url.encode(await key.sign(encoder.encode(input)))}`;
      },
    };
  }
  const privateKey = await importJWK(key, alg);
  return { kid, alg, sign: (claims, typ) => new SignJWT(claims).setProtectedHeader({ alg, kid, typ }).sign(privateKey) };
}

/**
 * A signer that follows a key set which changes while Moat runs (keys.source database): each
 * signature is made with the active key of the set as it is at that moment, never one the set no
 * longer holds. `kid` and `alg` name the key of the last signature (the first active key before one).
 */
export async function createFollowingJwsSigner(current: () => { keys: readonly (JWK | SelfSigningKey)[] }, preferredAlg?: string): Promise<JwsSigner> {
  let source = current();
  let signer = await createJwsSigner(source, preferredAlg);
  return {
    get kid() {
      return signer.kid;
    },
    get alg() {
      return signer.alg;
    },
    async sign(claims, typ) {
      const now = current();
      if (now !== source) {
        signer = await createJwsSigner(now, preferredAlg);
        source = now;
      }
      return signer.sign(claims, typ);
    },
  };
}

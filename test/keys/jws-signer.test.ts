import { generateKeyPairSync, sign } from 'node:crypto';
import { createLocalJWKSet, exportJWK, jwtVerify } from 'jose';
import { createJwsSigner } from '../../src/keys/jws-signer.ts';
import { generateSigningKey, providerJwks } from '../../src/keys/signing-keys.ts';

/*
 * What Moat signs itself (expiry notices) verifies against the JWKS it publishes, whether its keys
 * are private JWKs or keys that sign for themselves (an HSM behind oidc-provider's ExternalSigningKey).
 */

it('signs with the active key of the preferred algorithm, never a verify-only one', async () => {
  const retired = { ...(await generateSigningKey('ES256', 'retired', 0)) };
  const es = await generateSigningKey('ES256', 'active', 0);
  const ps = await generateSigningKey('PS256', 'active', 0);
  const jwks = providerJwks([retired, es, ps]);
  const signer = await createJwsSigner(jwks, 'PS256');
  expect(signer.kid).toBe(ps.kid);
  const published = { keys: jwks.keys.map(({ d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub }) => pub) };
  const { protectedHeader } = await jwtVerify(await signer.sign({ iss: 'https://moat.example' }, 'secevent+jwt'), createLocalJWKSet(published), {
    typ: 'secevent+jwt',
  });
  expect(protectedHeader).toEqual({ alg: 'PS256', kid: ps.kid, typ: 'secevent+jwt' });
});

it('has a key that signs for itself make the signature (RFC 7515 compact serialisation), verifiable with its public JWK', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const external = {
    kid: 'hsm-1',
    alg: 'ES256',
    // RFC 7518 §3.4: the JWS form of an ECDSA signature is r‖s, as a PKCS#11 token returns it.
    sign: async (data: Uint8Array) => sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
  };
  const signer = await createJwsSigner({ keys: [external] });
  const jwt = await signer.sign({ iss: 'https://moat.example', jti: 'n-1' }, 'secevent+jwt');
  const { payload } = await jwtVerify(jwt, createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'hsm-1', alg: 'ES256' }] }), {
    typ: 'secevent+jwt',
  });
  expect(payload).toEqual({ iss: 'https://moat.example', jti: 'n-1' });
});

it('refuses a key set with no active key', async () => {
  const retired = await generateSigningKey('ES256', 'retired', 0);
  await expect(createJwsSigner(providerJwks([retired]))).rejects.toThrow('no active signing key');
});

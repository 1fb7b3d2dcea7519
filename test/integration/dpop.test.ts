import { randomUUID, webcrypto } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorize, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * DPoP (RFC 9449) as the alternative sender constraint: the authorization code is bound to the key
 * at PAR (dpop_jkt, FAPI 2.0 SP §5.3.2.1), the access token to the same key (cnf.jkt).
 */

let h: Harness;
let tpp: RegisteredTpp;

beforeAll(async () => {
  h = await startMoat();
  tpp = await onboardTpp(h, { registration: { dpop_bound_access_tokens: true } });
});

afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

async function dpopKey() {
  return webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

async function codeFor(keyPair: webcrypto.CryptoKeyPair) {
  return authorize(h, tpp, { dpop: oauth.DPoP(tpp.client, keyPair) });
}

describe('a DPoP-bound client', () => {
  let keyPair: webcrypto.CryptoKeyPair;
  let accessToken: string;

  beforeAll(async () => {
    keyPair = await dpopKey();
    const { params, codeVerifier } = await codeFor(keyPair);
    const dpop = oauth.DPoP(tpp.client, keyPair);
    const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, { [oauth.customFetch]: tpp.fetch, DPoP: dpop });
    const tokens = await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, res);
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    accessToken = tokens.access_token;
  });

  it('gets an access token that introspects with cnf.jkt and no certificate binding', async () => {
    const introspection = await oauth.processIntrospectionResponse(tpp.as, tpp.client,
      await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), accessToken, { [oauth.customFetch]: tpp.fetch }));
    expect(introspection.active).toBe(true);
    expect(introspection.cnf).toEqual({ jkt: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
  });

  it('calls the sandbox API with a fresh proof of the key', async () => {
    const res = await oauth.protectedResourceRequest(accessToken, 'GET', new URL(`${h.issuer}/sandbox-api/accounts`), undefined, undefined,
      { [oauth.customFetch]: tpp.fetch, DPoP: oauth.DPoP(tpp.client, keyPair) });
    expect(res.status).toBe(200);
  });

  it('is refused by the API without a proof', async () => {
    const res = await tpp.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'invalid_token', error_description: 'this access token is DPoP-bound; use the DPoP authorization scheme (RFC 9449 §7.1)' });
  });

  it('is refused by the API with a proof from another key', async () => {
    const refused = await oauth.protectedResourceRequest(accessToken, 'GET', new URL(`${h.issuer}/sandbox-api/accounts`), undefined, undefined,
      { [oauth.customFetch]: tpp.fetch, DPoP: oauth.DPoP(tpp.client, await dpopKey()) }).then(() => undefined, (err: unknown) => err);
    expect(refused).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const challenge = (refused as oauth.WWWAuthenticateChallengeError).cause[0]!;
    expect(challenge.scheme).toBe('dpop');
    expect(challenge.parameters).toEqual(expect.objectContaining({ error: 'invalid_dpop_proof', error_description: 'DPoP proof rejected: the proof key is not the key the token is bound to' }));
    expect((refused as oauth.WWWAuthenticateChallengeError).response.status).toBe(401);
  });

  it('cannot redeem a code bound at PAR with a proof from another key', async () => {
    const { params, codeVerifier } = await codeFor(keyPair);
    const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier,
      { [oauth.customFetch]: tpp.fetch, DPoP: oauth.DPoP(tpp.client, await dpopKey()) });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual(expect.objectContaining({ error: 'invalid_grant' }));
  });

  it('cannot get a token without any DPoP proof', async () => {
    const { params, codeVerifier } = await codeFor(keyPair);
    const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, { [oauth.customFetch]: tpp.fetch });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual(expect.objectContaining({ error: 'invalid_grant' }));
  });
});

describe('DPoP proof replay', () => {
  it('accepts one proof once, even sent five times at once (RFC 9449 §11.1)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const proof = await new SignJWT({ htm: 'POST', htu: `${h.issuer}/token`, jti: randomUUID() })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(publicKey) })
      .setIssuedAt()
      .sign(privateKey);
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: tpp.client.client_id, scope: 'accounts' }).toString();
    // Connections opened first, so the five requests reach the server together.
    await Promise.all(Array.from({ length: 5 }, async () => (await tpp.fetch(`${h.issuer}/jwks`)).arrayBuffer()));
    const results = await Promise.all(Array.from({ length: 5 }, async () => {
      const res = await tpp.fetch(`${h.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof }, body });
      return { status: res.status, body: await res.json() as Record<string, unknown> };
    }));
    expect(results.map((r) => r.status).sort()).toEqual([200, 400, 400, 400, 400]);
    expect(results.find((r) => r.status === 200)!.body.token_type).toBe('DPoP');
    // oidc-provider answers a replayed proof at the token endpoint as an invalid grant.
    for (const refused of results.filter((r) => r.status === 400)) expect(refused.body).toEqual(expect.objectContaining({ error: 'invalid_grant' }));
  });
});

import type { webcrypto } from 'node:crypto';
import { importJWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { customerConsents, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Profiles selectable per client with `fapi_profile`: FAPI 2.0 Message Signing (signed request
 * objects at PAR, JARM responses) and FAPI 1.0 Advanced (the same, plus nonce/state rules).
 */

let h: Harness;

beforeAll(async () => {
  h = await startMoat();
});

afterAll(async () => {
  await h?.close();
});

async function signingKey(tpp: RegisteredTpp): Promise<oauth.PrivateKey> {
  const jwk = tpp.creds.signingJwks.keys[0]!;
  return { key: (await importJWK(jwk, 'ES256')) as webcrypto.CryptoKey, kid: jwk.kid };
}

async function pkce() {
  const verifier = oauth.generateRandomCodeVerifier();
  return { verifier, challenge: await oauth.calculatePKCECodeChallenge(verifier) };
}

async function par(tpp: RegisteredTpp, params: URLSearchParams) {
  return oauth.pushedAuthorizationRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, { [oauth.customFetch]: tpp.fetch });
}

describe.each([
  ['fapi2-message-signing', 'FAPI 2.0 Message Signing §5.3'],
  ['fapi1-advanced', 'FAPI 1.0 Advanced §5.2.2'],
])('a client registered with fapi_profile %s (%s)', (profile) => {
  let tpp: RegisteredTpp;

  beforeAll(async () => {
    tpp = await onboardTpp(h, { registration: { fapi_profile: profile } });
  });

  afterAll(async () => {
    await tpp?.close();
  });

  it('is registered to require signed request objects and JARM response modes', () => {
    expect(tpp.client).toEqual(expect.objectContaining({ fapi_profile: profile, require_signed_request_object: true, response_modes: ['jwt', 'query.jwt'] }));
  });

  it('has a PAR request without a signed request object refused with invalid_request', async () => {
    const { challenge } = await pkce();
    const res = await par(
      tpp,
      new URLSearchParams({
        response_type: 'code',
        redirect_uri: tpp.redirectUri,
        scope: 'openid accounts',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        response_mode: 'jwt',
        nonce: 'n-1',
        state: 's-1',
      }),
    );
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual(expect.objectContaining({ error: 'invalid_request', error_description: 'Request Object must be used by this client' }));
  });

  it('completes with a signed request object and a signed (JARM) authorization response', async () => {
    const { verifier, challenge } = await pkce();
    const request = await oauth.issueRequestObject(
      tpp.as,
      tpp.client,
      new URLSearchParams({
        response_type: 'code',
        redirect_uri: tpp.redirectUri,
        scope: 'openid accounts',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        response_mode: 'jwt',
        nonce: 'nonce-1',
        state: 'state-1',
      }),
      await signingKey(tpp),
    );
    const res = await par(tpp, new URLSearchParams({ request }));
    const { request_uri: requestUri } = await oauth.processPushedAuthorizationResponse(tpp.as, tpp.client, res);
    const location = new URL(await customerConsents(h, tpp, requestUri));
    expect([...location.searchParams.keys()]).toEqual(['response']);
    const params = await oauth.validateJwtAuthResponse(tpp.as, tpp.client, location, 'state-1', { [oauth.customFetch]: tpp.fetch });
    const token = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, verifier, {
      [oauth.customFetch]: tpp.fetch,
    });
    const tokens = await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, token, { expectedNonce: 'nonce-1' });
    expect(tokens.access_token).toEqual(expect.any(String));
  });

  it('refuses a plain (unsigned) authorization response mode', async () => {
    const { challenge } = await pkce();
    const request = await oauth.issueRequestObject(
      tpp.as,
      tpp.client,
      new URLSearchParams({
        response_type: 'code',
        redirect_uri: tpp.redirectUri,
        scope: 'openid',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        response_mode: 'query',
        nonce: 'n',
        state: 's',
      }),
      await signingKey(tpp),
    );
    const res = await par(tpp, new URLSearchParams({ request }));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_request', error_description: 'requested response_mode is not allowed for this client or request' });
  });

  it('refuses a request object signed with a key the client did not register', async () => {
    const { challenge } = await pkce();
    const stranger = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const request = await oauth.issueRequestObject(
      tpp.as,
      tpp.client,
      new URLSearchParams({
        response_type: 'code',
        redirect_uri: tpp.redirectUri,
        scope: 'openid',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        response_mode: 'jwt',
        nonce: 'n',
        state: 's',
      }),
      { key: stranger.privateKey },
    );
    const res = await par(tpp, new URLSearchParams({ request }));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual(expect.objectContaining({ error: 'invalid_request_object' }));
  });
});

describe('a FAPI 2.0 Security Profile client (the default)', () => {
  it('is not held to request objects or JARM', async () => {
    const tpp = await onboardTpp(h);
    try {
      expect(tpp.client).toEqual(expect.objectContaining({ require_signed_request_object: false }));
      expect(tpp.client.fapi_profile).toBeUndefined();
    } finally {
      await tpp.close();
    }
  });

  it('cannot register an unknown profile', async () => {
    await expect(onboardTpp(h, { registration: { fapi_profile: 'fapi3' } })).rejects.toThrow(
      'registration failed: 400 {"error":"invalid_client_metadata","error_description":"fapi_profile must be one of fapi2-security, fapi2-message-signing, fapi1-advanced"}',
    );
  });
});

describe('the profile oidc-provider applies', () => {
  it('is FAPI 1.0 Advanced for fapi1-advanced clients: an openid request without nonce is refused there, accepted under FAPI 2.0 Message Signing', async () => {
    const fapi1 = await onboardTpp(h, { registration: { fapi_profile: 'fapi1-advanced' } });
    const fapi2 = await onboardTpp(h, { registration: { fapi_profile: 'fapi2-message-signing' } });
    try {
      for (const [tpp, expected] of [
        [fapi1, 400],
        [fapi2, 201],
      ] as const) {
        const { challenge } = await pkce();
        const request = await oauth.issueRequestObject(
          tpp.as,
          tpp.client,
          new URLSearchParams({
            response_type: 'code',
            redirect_uri: tpp.redirectUri,
            scope: 'openid accounts',
            code_challenge: challenge,
            code_challenge_method: 'S256',
            response_mode: 'jwt',
            state: 's',
          }),
          await signingKey(tpp),
        );
        const res = await par(tpp, new URLSearchParams({ request }));
        expect(res.status).toBe(expected);
        if (expected === 400) expect(await res.json()).toEqual({ error: 'invalid_request', error_description: "missing required parameter 'nonce'" });
      }
    } finally {
      await fapi1.close();
      await fapi2.close();
    }
  });
});

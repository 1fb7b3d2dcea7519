import { createHash, randomUUID, webcrypto } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorize, onboardTpp, tlsFetch, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * The UserInfo endpoint (OIDC Core §5.3) beside resource indicators (RFC 8707): a grant of OpenID
 * Connect scopes alone gets an access token for userinfo; a grant that also names an API scope gets
 * the API's token from the code (RFC 8707 §2.2: the granted resource), and a userinfo token from a
 * refresh request that narrows the scope to `openid` (RFC 6749 §6). Both sender constraints: the
 * certificate (RFC 8705 §3) and DPoP (RFC 9449 §7).
 */

let h: Harness;
let mtls: RegisteredTpp;
let dpop: RegisteredTpp;

beforeAll(async () => {
  h = await startMoat();
  mtls = await onboardTpp(h);
  dpop = await onboardTpp(h, { registration: { dpop_bound_access_tokens: true } });
});

afterAll(async () => {
  await mtls?.close();
  await dpop?.close();
  await h?.close();
});

const sandboxApi = () => `${h.issuer}/sandbox-api`;

async function dpopKey() {
  return webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

/** PAR → consent → code → tokens, with a DPoP key when given. */
async function tokensFor(tpp: RegisteredTpp, scope: string, keys?: webcrypto.CryptoKeyPair): Promise<oauth.TokenEndpointResponse> {
  const options = keys === undefined ? {} : { DPoP: oauth.DPoP(tpp.client, keys) };
  const { params, codeVerifier } = await authorize(h, tpp, { scope, ...(keys === undefined ? {} : { dpop: oauth.DPoP(tpp.client, keys) }) });
  const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
    [oauth.customFetch]: tpp.fetch,
    ...options,
  });
  return oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, res);
}

async function refresh(
  tpp: RegisteredTpp,
  tokens: oauth.TokenEndpointResponse,
  parameters: Record<string, string>,
  keys?: webcrypto.CryptoKeyPair,
): Promise<oauth.TokenEndpointResponse> {
  const res = await oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.refresh_token!, {
    [oauth.customFetch]: tpp.fetch,
    additionalParameters: parameters,
    ...(keys === undefined ? {} : { DPoP: oauth.DPoP(tpp.client, keys) }),
  });
  return oauth.processRefreshTokenResponse(tpp.as, tpp.client, res);
}

/** What a plain OIDC client does: oauth4webapi's userInfoRequest + processUserInfoResponse (openid-client's fetchUserInfo). */
async function userInfo(
  tpp: RegisteredTpp,
  tokens: oauth.TokenEndpointResponse,
  accessToken: string,
  keys?: webcrypto.CryptoKeyPair,
): Promise<oauth.UserInfoResponse> {
  const res = await oauth.userInfoRequest(tpp.as, tpp.client, accessToken, {
    [oauth.customFetch]: tpp.fetch,
    ...(keys === undefined ? {} : { DPoP: oauth.DPoP(tpp.client, keys) }),
  });
  return oauth.processUserInfoResponse(tpp.as, tpp.client, oauth.getValidatedIdTokenClaims(tokens)!.sub, res);
}

async function callApi(tpp: RegisteredTpp, accessToken: string, keys?: webcrypto.CryptoKeyPair): Promise<Response> {
  if (keys === undefined) return tpp.fetch(`${sandboxApi()}/accounts`, { headers: { authorization: `Bearer ${accessToken}` } });
  return oauth
    .protectedResourceRequest(accessToken, 'GET', new URL(`${sandboxApi()}/accounts`), undefined, undefined, {
      [oauth.customFetch]: tpp.fetch,
      DPoP: oauth.DPoP(tpp.client, keys),
    })
    .catch((err: unknown) => (err as oauth.WWWAuthenticateChallengeError).response);
}

async function introspect(tpp: RegisteredTpp, token: string): Promise<oauth.IntrospectionResponse> {
  return oauth.processIntrospectionResponse(
    tpp.as,
    tpp.client,
    await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), token, { [oauth.customFetch]: tpp.fetch }),
  );
}

describe('userinfo with a certificate-bound token (RFC 8705 §3)', () => {
  it('reads userinfo with the access token of a grant of only OpenID Connect scopes (OIDC Core §5.3.1)', async () => {
    const tokens = await tokensFor(mtls, 'openid');
    expect(tokens.scope).toBe('openid');
    expect(await userInfo(mtls, tokens, tokens.access_token)).toEqual(expect.objectContaining({ sub: 'cust-alice' }));
    const introspection = await introspect(mtls, tokens.access_token);
    expect(introspection).toEqual(expect.objectContaining({ active: true, scope: 'openid', cnf: { 'x5t#S256': expect.any(String) } }));
    expect(introspection.aud).toBeUndefined();
  });

  it('refuses that userinfo token without the certificate it is bound to', async () => {
    const tokens = await tokensFor(mtls, 'openid');
    const bare = tlsFetch(mtls.creds.serverCaPem);
    try {
      const res = await bare(`${h.issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual(expect.objectContaining({ error: 'invalid_token' }));
    } finally {
      await bare.close();
    }
  });

  describe('a grant of OpenID Connect and API scopes (scope=openid accounts, the README flow)', () => {
    let tokens: oauth.TokenEndpointResponse;

    beforeAll(async () => {
      tokens = await tokensFor(mtls, 'openid accounts');
    });

    it('gets the API token from the code, as before: it calls the sandbox API (RFC 8707 §2.2, the granted resource)', async () => {
      expect(tokens.scope).toBe('accounts');
      expect((await callApi(mtls, tokens.access_token)).status).toBe(200);
    });

    it('is told, at userinfo with the API token, how to get a userinfo token', async () => {
      const res = await mtls.fetch(`${h.issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(res.status).toBe(403);
      const description = `this access token is for ${sandboxApi()}, not for userinfo: get a userinfo access token with a refresh request that names scope=openid (RFC 6749 §6), and use the API token for the API`;
      expect(await res.json()).toEqual({ error: 'insufficient_scope', error_description: description, scope: 'openid' });
      // RFC 6750 §3: the challenge's error_description is printable ASCII.
      expect(res.headers.get('www-authenticate')).toContain(`error_description="${description.replace('§', 'section ')}"`);
    });

    it('gets a userinfo token from a refresh that narrows the scope to openid, and still an API token from a plain refresh', async () => {
      const forUserinfo = await refresh(mtls, tokens, { scope: 'openid' });
      expect(forUserinfo.scope).toBe('openid');
      expect(await userInfo(mtls, tokens, forUserinfo.access_token)).toEqual(expect.objectContaining({ sub: 'cust-alice' }));
      expect((await introspect(mtls, forUserinfo.access_token)).cnf).toEqual({ 'x5t#S256': expect.any(String) });
      // The userinfo token is not for the API.
      const refused = await callApi(mtls, forUserinfo.access_token);
      expect(refused.status).toBe(401);
      expect(await refused.json()).toEqual({ error: 'invalid_token', error_description: expect.stringContaining('userinfo') });

      const forApi = await refresh(mtls, tokens, {});
      expect((await callApi(mtls, forApi.access_token)).status).toBe(200);
    });

    it('gets an API token from a refresh that names the API as its resource (RFC 8707 §2.2)', async () => {
      const forApi = await refresh(mtls, tokens, { resource: sandboxApi() });
      expect(forApi.scope).toBe('accounts');
      expect((await callApi(mtls, forApi.access_token)).status).toBe(200);
    });
  });
});

describe('userinfo with a DPoP-bound token (RFC 9449 §7)', () => {
  it('reads userinfo with a proof of the key, for a grant of only OpenID Connect scopes', async () => {
    const keys = await dpopKey();
    const tokens = await tokensFor(dpop, 'openid', keys);
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    expect(await userInfo(dpop, tokens, tokens.access_token, keys)).toEqual(expect.objectContaining({ sub: 'cust-alice' }));
  });

  it('gets the API token from the code and a DPoP-bound userinfo token from a refresh with scope=openid', async () => {
    const keys = await dpopKey();
    const tokens = await tokensFor(dpop, 'openid accounts', keys);
    expect((await callApi(dpop, tokens.access_token, keys)).status).toBe(200);
    const forUserinfo = await refresh(dpop, tokens, { scope: 'openid' }, keys);
    expect(forUserinfo.token_type.toLowerCase()).toBe('dpop');
    expect(await userInfo(dpop, tokens, forUserinfo.access_token, keys)).toEqual(expect.objectContaining({ sub: 'cust-alice' }));
    expect((await introspect(dpop, forUserinfo.access_token)).cnf).toEqual({ jkt: expect.any(String) });
  });

  it('answers a replayed proof at userinfo with invalid_dpop_proof (RFC 9449 §7.1, §11.1)', async () => {
    const keys = await dpopKey();
    const tokens = await tokensFor(dpop, 'openid', keys);
    const proof = await new SignJWT({
      htm: 'GET',
      htu: `${h.issuer}/userinfo`,
      jti: randomUUID(),
      ath: createHash('sha256').update(tokens.access_token).digest('base64url'),
    })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(keys.publicKey) })
      .setIssuedAt()
      .sign(keys.privateKey);
    const send = () => dpop.fetch(`${h.issuer}/userinfo`, { headers: { authorization: `DPoP ${tokens.access_token}`, dpop: proof } });
    expect((await send()).status).toBe(200);
    const again = await send();
    expect(again.status).toBe(401);
    expect(await again.json()).toEqual({
      error: 'invalid_dpop_proof',
      error_description: expect.stringMatching(/^DPoP proof replayed: its jti was already used/),
    });
    expect(again.headers.get('www-authenticate')).toMatch(/^DPoP .*error="invalid_dpop_proof"/);
  });
});

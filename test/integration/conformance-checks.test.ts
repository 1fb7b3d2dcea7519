import { randomUUID, webcrypto } from 'node:crypto';
import { importJWK, SignJWT, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorize, Browser, onboardTpp, pushAuthorization, tlsFetch, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Checks named after the OpenID Foundation conformance suite's FAPI 2.0 server test modules
 * (fapi2spfinal/FAPI2SPFinal*), for what the other suites here do not already cover.
 */

let h: Harness;
let tpp: RegisteredTpp;
let signer: RegisteredTpp;

beforeAll(async () => {
  h = await startMoat();
  tpp = await onboardTpp(h);
  signer = await onboardTpp(h, {
    registration: { fapi_profile: 'fapi2-message-signing', token_endpoint_auth_method: 'private_key_jwt', tls_client_auth_subject_dn: undefined },
  });
});

afterAll(async () => {
  await tpp?.close();
  await signer?.close();
  await h?.close();
});

const now = () => Math.floor(Date.now() / 1000);

async function tppKey(client: RegisteredTpp) {
  const jwk = client.creds.signingJwks.keys[0]!;
  return { key: await importJWK(jwk, 'ES256'), kid: jwk.kid };
}

/** A request object with exactly the claims given (the conformance suite's negative cases). */
async function requestObject(claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const { key, kid } = await tppKey(signer);
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid, typ: 'oauth-authz-req+jwt', ...header }).sign(key);
}

async function goodClaims(): Promise<Record<string, unknown>> {
  return {
    iss: signer.client.client_id,
    aud: h.issuer,
    client_id: signer.client.client_id,
    response_type: 'code',
    response_mode: 'jwt',
    redirect_uri: signer.redirectUri,
    scope: 'openid accounts',
    nonce: randomUUID(),
    state: randomUUID(),
    code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
    code_challenge_method: 'S256',
    iat: now(),
    nbf: now(),
    exp: now() + 300,
    jti: randomUUID(),
  };
}

async function clientAssertion(claims: Record<string, unknown>, alg = 'ES256'): Promise<string> {
  const { key, kid } = await tppKey(signer);
  return new SignJWT(claims).setProtectedHeader({ alg, kid }).sign(key);
}

async function parWith(body: Record<string, string>) {
  const res = await signer.fetch(`${h.issuer}/par`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function signedPar(claims: Record<string, unknown>, assertionClaims?: Record<string, unknown>) {
  const assertion = await clientAssertion(
    assertionClaims ?? { iss: signer.client.client_id, sub: signer.client.client_id, aud: h.issuer, iat: now(), exp: now() + 60, jti: randomUUID() },
  );
  return parWith({
    client_id: signer.client.client_id,
    request: await requestObject(claims),
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  });
}

describe('request objects at PAR (FAPI 2.0 Message Signing)', () => {
  it('EnsureRequestObjectWithNbf8SecondsInTheFutureIsAccepted', async () => {
    expect((await signedPar({ ...(await goodClaims()), nbf: now() + 8 })).status).toBe(201);
  });

  it.each([
    ['EnsureRequestObjectWithoutExpFails', { exp: undefined }],
    ['EnsureRequestObjectWithoutNbfFails', { nbf: undefined }],
    ['EnsureExpiredRequestObjectFails', { exp: now() - 60, nbf: now() - 360, iat: now() - 360 }],
    ['EnsureRequestObjectWithBadAudFails', { aud: 'https://not-this-server.example' }],
    ['EnsureRequestObjectWithExpOver60Fails (exp − nbf over 60 minutes)', { exp: now() + 3700 }],
    ['EnsureRequestObjectWithNbfOver60Fails', { nbf: now() - 3700, iat: now() - 3700 }],
  ])('%s with invalid_request_object', async (_name, override) => {
    const claims: Record<string, unknown> = { ...(await goodClaims()), ...override };
    for (const [k, v] of Object.entries(override)) if (v === undefined) delete claims[k];
    const { status, body } = await signedPar(claims);
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_request_object');
  });

  it('EnsureRequestObjectWithoutRedirectUriFails', async () => {
    const claims = await goodClaims();
    delete claims.redirect_uri;
    const { status, body } = await signedPar(claims);
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_request');
  });

  it('EnsureSignedRequestObjectWithRS256Fails and EnsureRequestObjectSignatureAlgorithmIsNotNone', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const rs256 = await new SignJWT(await goodClaims()).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(await goodClaims())).toString('base64url')}.`;
    for (const request of [rs256, none]) {
      const assertion = await clientAssertion({
        iss: signer.client.client_id,
        sub: signer.client.client_id,
        aud: h.issuer,
        iat: now(),
        exp: now() + 60,
        jti: randomUUID(),
      });
      const { status, body } = await parWith({
        client_id: signer.client.client_id,
        request,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      });
      expect(status).toBe(400);
      expect(body.error).toBe('invalid_request_object');
    }
  });
});

describe('private_key_jwt client assertions', () => {
  const base = () => ({ iss: signer.client.client_id, sub: signer.client.client_id, aud: h.issuer, iat: now(), exp: now() + 60, jti: randomUUID() });

  it.each([
    ['EnsureClientAssertionWithWrongAudFails', { aud: 'https://elsewhere.example' }],
    ['EnsureClientAssertionWithExpIs5MinutesInPastFails', { exp: now() - 300, iat: now() - 360 }],
    ['EnsureClientAssertionWithNoSubFails', { sub: undefined }],
    ['PAREnsureJWTClientAssertionWithIatNbfOver60SecondsInTheFutureFails', { iat: now() + 120, nbf: now() + 120, exp: now() + 300 }],
  ])('%s with invalid_client', async (_name, override) => {
    const claims: Record<string, unknown> = { ...base(), ...override };
    for (const [k, v] of Object.entries(override)) if (v === undefined) delete claims[k];
    const { status, body } = await signedPar(await goodClaims(), claims);
    expect(status).toBe(401);
    expect(body.error).toBe('invalid_client');
  });

  it('EnsureSignedClientAssertionWithRS256Fails', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const assertion = await new SignJWT(base()).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
    const { status, body } = await parWith({
      client_id: signer.client.client_id,
      request: await requestObject(await goodClaims()),
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    expect(status).toBe(401);
    expect(body.error).toBe('invalid_client');
  });

  it('PAREnsureJWTClientAssertionWithIatNbf8SecondsInTheFutureIsAccepted', async () => {
    expect((await signedPar(await goodClaims(), { ...base(), iat: now() + 8, nbf: now() + 8 })).status).toBe(201);
  });
});

describe('PAR and request_uri', () => {
  it('PAREnsureServerAcceptsReusedRequestUriBeforeAuthenticationCompletion', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    for (let i = 0; i < 2; i += 1) {
      const browser = new Browser(h, tpp.creds.serverCaPem);
      try {
        const res = await browser.request(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
        expect(res.status).toBe(303);
        expect(res.headers.get('location')).toMatch(/\/interaction\//);
      } finally {
        await browser.close();
      }
    }
  });

  it('PAREnsureRequestUriIsBoundToClient', async () => {
    const other = await onboardTpp(h);
    try {
      const { requestUri } = await pushAuthorization(tpp);
      const browser = new Browser(h, tpp.creds.serverCaPem);
      try {
        const res = await browser.request(`/authorize?${new URLSearchParams({ client_id: other.client.client_id, request_uri: requestUri })}`);
        const where = res.headers.get('location') ?? '';
        // Either an error page or an error sent to the other client's own redirect_uri; never a login.
        expect(where).not.toMatch(/\/interaction\//);
        if (res.status === 303) expect(new URL(where).searchParams.get('error')).toMatch(/^invalid_request/);
        else expect(res.status).toBe(400);
      } finally {
        await browser.close();
      }
    } finally {
      await other.close();
    }
  });

  it('PARRejectInvalidHttpVerb', async () => {
    const res = await tpp.fetch(`${h.issuer}/par`);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  });
});

describe('the token endpoint', () => {
  it('PAREnsurePKCECodeVerifierRequired', async () => {
    const { params } = await authorize(h, tpp);
    const res = await tpp.fetch(`${h.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: tpp.client.client_id,
        grant_type: 'authorization_code',
        code: params.get('code')!,
        redirect_uri: tpp.redirectUri,
      }).toString(),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_grant');
  });

  it('EnsureHolderOfKeyRequired: without a certificate (or DPoP proof) there is no token', async () => {
    const pkj = await onboardTpp(h, { registration: { token_endpoint_auth_method: 'private_key_jwt', tls_client_auth_subject_dn: undefined } });
    const bare = tlsFetch(pkj.creds.serverCaPem);
    try {
      const auth = oauth.PrivateKeyJwt((await tppKey(pkj)) as oauth.PrivateKey);
      const { params, codeVerifier } = await authorize(h, pkj, { auth });
      const res = await oauth.authorizationCodeGrantRequest(pkj.as, pkj.client, auth, params, pkj.redirectUri, codeVerifier, { [oauth.customFetch]: bare });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual(expect.objectContaining({ error: 'invalid_grant' }));
    } finally {
      await bare.close();
      await pkj.close();
    }
  });
});

describe('DPoP proofs (RFC 9449)', () => {
  it('EnsureDpopProofWithIat10SecondsBeforeSucceeds and ...AfterSucceeds', async () => {
    const dpopClient = await onboardTpp(h, { registration: { dpop_bound_access_tokens: true } });
    try {
      const keyPair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      for (const skew of [-10, 10]) {
        const { params, codeVerifier } = await authorize(h, dpopClient, { dpop: oauth.DPoP(dpopClient.client, keyPair) });
        const skewed = { ...dpopClient.client, [oauth.clockSkew]: skew };
        const res = await oauth.authorizationCodeGrantRequest(dpopClient.as, skewed, oauth.TlsClientAuth(), params, dpopClient.redirectUri, codeVerifier, {
          [oauth.customFetch]: dpopClient.fetch,
          DPoP: oauth.DPoP(skewed, keyPair),
        });
        expect(res.status).toBe(200);
      }
    } finally {
      await dpopClient.close();
    }
  });
});

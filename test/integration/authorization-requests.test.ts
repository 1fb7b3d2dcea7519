import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';
import * as oauth from 'oauth4webapi';
import { withClockAhead } from '../support/clock.ts';
import type { Harness } from '../support/moat-harness.ts';
import {
  authorize,
  Browser,
  customerConsents,
  onboardTpp,
  pushAuthorization,
  type RegisteredTpp,
  tlsFetch,
  useMoatWithTpp,
  hiddenField,
} from '../support/tpp-client.ts';

/*
 * The authorization endpoint rules of FAPI 2.0 SP §5.3.2.2 (and RFC 9126, RFC 7636, RFC 9207),
 * each asserting the exact OAuth error and status.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

async function pkce() {
  const verifier = oauth.generateRandomCodeVerifier();
  return { verifier, challenge: await oauth.calculatePKCECodeChallenge(verifier) };
}

async function rawPar(params: Record<string, string>, f = tpp.fetch) {
  const res = await f(`${h.issuer}/par`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: tpp.client.client_id, ...params }).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function goodParams(): Promise<Record<string, string>> {
  return {
    response_type: 'code',
    redirect_uri: tpp.redirectUri,
    scope: 'openid accounts',
    code_challenge: (await pkce()).challenge,
    code_challenge_method: 'S256',
  };
}

describe('pushed authorization requests (RFC 9126, FAPI 2.0 SP §5.3.2.2)', () => {
  it('accepts a well-formed request with a request_uri living under 600 s', async () => {
    const { status, body } = await rawPar(await goodParams());
    expect(status).toBe(201);
    expect(body.request_uri).toMatch(/^urn:ietf:params:oauth:request_uri:/);
    expect(body.expires_in).toBeLessThan(600);
  });

  it('refuses a request without client authentication (no certificate) with invalid_client', async () => {
    const bare = tlsFetch(tpp.creds.serverCaPem);
    try {
      const { status, body } = await rawPar(await goodParams(), bare);
      expect(status).toBe(401);
      expect(body.error).toBe('invalid_client');
    } finally {
      await bare.close();
    }
  });

  it('refuses a request without PKCE', async () => {
    const { code_challenge: _c, code_challenge_method: _m, ...params } = await goodParams();
    expect(await rawPar(params)).toEqual({
      status: 400,
      body: { error: 'invalid_request', error_description: 'Authorization Server policy requires PKCE to be used for this request' },
    });
  });

  it('refuses the plain PKCE method (only S256)', async () => {
    const { status, body } = await rawPar({ ...(await goodParams()), code_challenge_method: 'plain' });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_request');
    expect(body.error_description).toMatch(/code_challenge_method/);
  });

  it.each(['token', 'code id_token', 'id_token'])('refuses response_type=%s with unsupported_response_type', async (responseType) => {
    const { status, body } = await rawPar({ ...(await goodParams()), response_type: responseType });
    expect(status).toBe(400);
    expect(body.error).toBe('unsupported_response_type');
  });

  it('refuses a request without redirect_uri', async () => {
    const { redirect_uri: _r, ...params } = await goodParams();
    expect(await rawPar(params)).toEqual({ status: 400, body: { error: 'invalid_request', error_description: "missing required parameter 'redirect_uri'" } });
  });

  it('refuses a redirect_uri the client did not register (no open redirector)', async () => {
    const { status, body } = await rawPar({ ...(await goodParams()), redirect_uri: 'https://attacker.example/cb' });
    expect(status).toBe(400);
    expect(body).toEqual({ error: 'invalid_request', error_description: "redirect_uri did not match any of the client's registered redirect_uris" });
  });

  it('refuses a scope the client was not registered for with invalid_scope', async () => {
    const { status, body } = await rawPar({ ...(await goodParams()), scope: 'openid fundsconfirmations' });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_scope');
  });

  it('refuses a request_uri inside a pushed request (RFC 9126 §2.1)', async () => {
    const { status, body } = await rawPar({ ...(await goodParams()), request_uri: 'urn:ietf:params:oauth:request_uri:abc' });
    expect(status).toBe(400);
    expect(body.error).toBe('request_uri_not_supported');
  });

  describe('the purpose parameter (OpenID Connect for Identity Assurance 1.0: 3 to 300 characters)', () => {
    it('accepts a purpose of 3 and of 300 characters, counted as characters, not bytes', async () => {
      expect((await rawPar({ ...(await goodParams()), purpose: 'Tax' })).status).toBe(201);
      expect((await rawPar({ ...(await goodParams()), purpose: 'é'.repeat(300) })).status).toBe(201);
    });

    it.each([
      ['shorter than 3 characters', 'ab', 'purpose must be 3 to 300 characters (it has 2)'],
      ['longer than 300 characters', 'x'.repeat(301), 'purpose must be 3 to 300 characters (it has 301)'],
      ['with a line break', 'To check\nyour bank says yes', 'purpose must be plain text, without control or bidirectional formatting characters'],
      ['with a bidirectional override', 'Pay \u202Eevil', 'purpose must be plain text, without control or bidirectional formatting characters'],
    ])('refuses a purpose %s with invalid_request', async (_case, purpose, description) => {
      expect(await rawPar({ ...(await goodParams()), purpose })).toEqual({ status: 400, body: { error: 'invalid_request', error_description: description } });
    });
  });

  it('accepts a nonce of 64 characters', async () => {
    const { status } = await rawPar({ ...(await goodParams()), nonce: 'n'.repeat(64) });
    expect(status).toBe(201);
  });
});

describe('the authorization endpoint (FAPI 2.0 SP §5.3.2.2)', () => {
  it('refuses a request that did not go through PAR', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const res = await browser.request(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, ...(await goodParams()) })}`);
      // The redirect_uri is the client's own, so the error goes back to it (RFC 6749 §4.1.2.1).
      expect(res.status).toBe(303);
      const location = new URL(res.headers.get('location')!);
      expect(location.origin + location.pathname).toBe(tpp.redirectUri);
      expect(location.searchParams.get('error')).toBe('invalid_request');
      expect(location.searchParams.get('error_description')).toBe('Pushed Authorization Request must be used');
      expect(location.searchParams.get('iss')).toBe(h.issuer);
    } finally {
      await browser.close();
    }
  });

  it('sends the code back with a 303 and iss (RFC 9207)', async () => {
    const { location } = await authorize(h, tpp);
    const url = new URL(location);
    expect(url.origin + url.pathname).toBe(tpp.redirectUri);
    expect(url.searchParams.get('iss')).toBe(h.issuer);
    expect(url.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43,}$/);
  });

  it('redirects to the client with 303, never 307 (FAPI 2.0 SP §5.3.2.2)', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const { requestUri } = await pushAuthorization(tpp);
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
      const csrf = hiddenField(await start.res.text(), 'csrf');
      const login = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'alice', password: 'alice-sandbox', csrf } });
      expect(login.status).toBe(303);
      // The second factor finishes the sign-in: that redirect too is a 303.
      const codePage = await (await browser.request(`/interaction/${uid}`)).text();
      const code = totpCode(SANDBOX_CUSTOMERS[0].totpSecret, new Date());
      const finished = await browser.request(`/interaction/${uid}/totp`, { method: 'POST', form: { csrf: hiddenField(codePage, 'csrf'), code } });
      expect(finished.status).toBe(303);
    } finally {
      await browser.close();
    }
  });

  it('uses a request_uri once: a second authorization with it is refused', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    const first = new URL(await customerConsents(h, tpp, requestUri));
    expect(first.searchParams.get('code')).not.toBeNull();
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const again = await browser.request(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      expect(again.status).toBe(400);
      // The customer reads plain words; the OAuth code is in the request's log line (issue 18 defect 3).
      const page = await again.text();
      expect(page).toContain('We could not start this request');
      expect(page).not.toContain('invalid_request_uri');
      expect(h.logs.some((l) => l.event === 'request' && l.path === '/authorize' && l.status === 400 && l.outcome === 'invalid_request_uri')).toBe(true);
    } finally {
      await browser.close();
    }
  });

  it('returns access_denied to the client when the customer denies', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    const location = new URL(await customerConsents(h, tpp, requestUri, { decision: 'deny' }));
    expect(location.searchParams.get('error')).toBe('access_denied');
    expect(location.searchParams.get('iss')).toBe(h.issuer);
  });
});

describe('the token endpoint', () => {
  it('refuses a wrong code_verifier with invalid_grant', async () => {
    const { params } = await authorize(h, tpp);
    const res = await oauth.authorizationCodeGrantRequest(
      tpp.as,
      tpp.client,
      oauth.TlsClientAuth(),
      params,
      tpp.redirectUri,
      oauth.generateRandomCodeVerifier(),
      { [oauth.customFetch]: tpp.fetch },
    );
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_grant', error_description: 'grant request is invalid' });
  });

  it('refuses a code issued to another client with invalid_grant', async () => {
    const other = await onboardTpp(h);
    try {
      const { params, codeVerifier } = await authorize(h, tpp);
      const res = await oauth.authorizationCodeGrantRequest(other.as, other.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
        [oauth.customFetch]: other.fetch,
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_grant');
    } finally {
      await other.close();
    }
  });

  it('refuses a tls_client_auth client presenting another certificate with invalid_client', async () => {
    const other = await onboardTpp(h);
    try {
      const { params, codeVerifier } = await authorize(h, tpp);
      // tpp's client_id, other's certificate: the subject DN does not match the registered one.
      const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
        [oauth.customFetch]: other.fetch,
      });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    } finally {
      await other.close();
    }
  });

  it('refuses the password grant with unsupported_grant_type (FAPI 2.0 SP §5.3.2.1)', async () => {
    const res = await tpp.fetch(`${h.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: tpp.client.client_id, grant_type: 'password', username: 'alice', password: 'alice-sandbox' }).toString(),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('unsupported_grant_type');
  });

  it('issues certificate-bound client_credentials tokens', async () => {
    const res = await oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts' }), {
      [oauth.customFetch]: tpp.fetch,
    });
    const tokens = await oauth.processClientCredentialsResponse(tpp.as, tpp.client, res);
    const introspection = await oauth.processIntrospectionResponse(
      tpp.as,
      tpp.client,
      await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.access_token, { [oauth.customFetch]: tpp.fetch }),
    );
    expect(introspection).toEqual(expect.objectContaining({ active: true, cnf: { 'x5t#S256': tpp.creds.summary['x5t#S256'] } }));
  });

  it('does not rotate refresh tokens by default: the same one works twice (FAPI 2.0 SP §5.3.2.1)', async () => {
    const { params, codeVerifier } = await authorize(h, tpp);
    const tokens = await oauth.processAuthorizationCodeResponse(
      tpp.as,
      tpp.client,
      await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
        [oauth.customFetch]: tpp.fetch,
      }),
    );
    for (let i = 0; i < 2; i += 1) {
      const res = await oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.refresh_token!, { [oauth.customFetch]: tpp.fetch });
      const refreshed = await oauth.processRefreshTokenResponse(tpp.as, tpp.client, res);
      expect(refreshed.refresh_token ?? tokens.refresh_token).toBe(tokens.refresh_token);
    }
  });
});

describe('authorization codes expire (FAPI 2.0 SP §5.3.2.1: at most 60 s)', () => {
  it('refuses a code used after its lifetime with invalid_grant', async () => {
    // The clock moves past the configured lifetime (the 60 s default) instead of waiting it out;
    // oidc-provider decides the code's expiry by that clock (test/support/clock.ts).
    const { params, codeVerifier } = await authorize(h, tpp);
    const res = await withClockAhead((h.config.tokens.authorizationCodeTtl + 1) * 1000, () =>
      oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
        [oauth.customFetch]: tpp.fetch,
      }),
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_grant');
  });
});

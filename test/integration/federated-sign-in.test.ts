import * as oauth from 'oauth4webapi';
import { scrapeMetrics, sampleSum } from '../support/admin-metrics.ts';
import { federatedCustomer, useMoatWithBankIdp, type BankIdp } from '../support/bank-idp.ts';
import type { Harness } from '../support/moat-harness.ts';
import { Browser, hiddenField, pushAuthorization, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * customers.source: oidc — the customer signs in at the bank's own OpenID Provider (a second, real
 * oidc-provider on a loopback port), headless through the form contract. Every way the IdP can fail
 * ends in a page for the customer with a way back, an RFC 6749 §4.1.2.1 error for the TPP when the
 * interaction ends, and a classified log line and metric for the operator.
 */

let idp: BankIdp;
let h: Harness;
let tpp: RegisteredTpp;

// Generous for a loaded machine; the hanging IdP is held until the timeout fires, never raced.
useMoatWithBankIdp((started) => ({ idp, h, tpp } = started), { oidc: { timeoutMs: 4000 } });
afterEach(() => {
  for (const key of Object.keys(idp.misbehave)) delete idp.misbehave[key as keyof typeof idp.misbehave];
});

async function redeem(location: string, codeVerifier: string): Promise<oauth.TokenEndpointResponse> {
  const params = oauth.validateAuthResponse(tpp.as, tpp.client, new URL(location), oauth.skipStateCheck);
  const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
    [oauth.customFetch]: tpp.fetch,
  });
  return oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, res);
}

function tppError(location: string): { error: string | null; description: string | null } {
  const params = new URL(location).searchParams;
  return { error: params.get('error'), description: params.get('error_description') };
}

const failures = (kind: string) => h.logs.filter((l) => l.event === 'federation.failed' && l.kind === kind);

describe('federated sign-in at the bank IdP (customers.source: oidc)', () => {
  it('signs the customer in at the IdP, shows the consent page with their upstream name, and issues tokens for the mapped customer id', async () => {
    const { requestUri, codeVerifier } = await pushAuthorization(tpp);
    const before = idp.requests.length;
    const journey = await federatedCustomer(h, tpp, idp, requestUri);
    expect(journey.page?.html).toContain('Signed in as Alice B. Example');
    expect(journey.tppLocation).toBeDefined();
    const tokens = await redeem(journey.tppLocation!, codeVerifier);
    const claims = oauth.getValidatedIdTokenClaims(tokens)!;
    // The customer id is the configured upstream claim (customer_number), not the IdP's sub.
    expect(claims.sub).toBe('cust-alice');
    // RFC 9126: the IdP advertises PAR, so the request went over the back channel.
    const seen = idp.requests.slice(before);
    expect(seen).toContain('POST /request');
    expect(seen).toContain('POST /token');
    const { rows } = await h.moat.storage.sql.query<{ id: string; name: string; issuer: string }>('SELECT id, name, issuer FROM federated_customer');
    expect(rows).toEqual([{ id: 'cust-alice', name: 'Alice B. Example', issuer: idp.issuer }]);
  });

  it("sends the IdP a PKCE S256 request with state, nonce and Moat's callback as redirect_uri, authenticated by private_key_jwt", async () => {
    const { requestUri } = await pushAuthorization(tpp);
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const toIdp = new URL(start.location!);
      expect(toIdp.origin).toBe(idp.issuer);
      // Only the PAR handle travels through the browser.
      expect([...toIdp.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
      expect(toIdp.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/);
    } finally {
      await browser.close();
    }
  });

  it('refuses the password form: the bank signs its customers in itself', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const uid = start.url.split('/')[2] ?? new URL(start.url, h.issuer).pathname.split('/')[2]!;
      const res = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'alice', password: 'alice-sandbox', csrf: 'x' } });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toContain('text/html');
    } finally {
      await browser.close();
    }
  });

  it("says the stronger-sign-in page in the authorization's ui_locales (issue 18 point 8)", async () => {
    const { requestUri } = await pushAuthorization(tpp, { extraParams: { ui_locales: 'pt-BR' } });
    const journey = await federatedCustomer(h, tpp, idp, requestUri, { user: { username: 'bob', password: 'bob-bank' } });
    expect(journey.page?.status).toBe(403);
    expect(journey.page?.html).toContain('<html lang="pt-BR">');
    expect(journey.page?.html).toContain('É preciso um acesso mais forte');
    expect(journey.page?.html).toContain('Cancelar e voltar ao aplicativo');
  });

  it('ends with access_denied for the TPP when the customer cancels at the bank (RFC 6749 §4.1.2.1)', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    const journey = await federatedCustomer(h, tpp, idp, requestUri, { cancelAtBank: true });
    expect(tppError(journey.tppLocation!).error).toBe('access_denied');
  });

  it('never accepts an upstream login that is not SCA: a customer without a Moat factor to step it up gets a page, the TPP access_denied when they cancel (RTS Art. 4)', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    const journey = await federatedCustomer(h, tpp, idp, requestUri, { user: { username: 'bob', password: 'bob-bank' }, keepBrowser: true });
    try {
      expect(journey.tppLocation).toBeUndefined();
      expect(journey.page?.status).toBe(403);
      expect(journey.page?.html).toContain('A stronger sign-in is needed');
      const uid = new URL(journey.page!.url, h.issuer).pathname.split('/')[2]!;
      const cancel = await journey.moat.follow(`/interaction/${uid}/federated/abandon`, {
        method: 'POST',
        form: { csrf: hiddenField(journey.page!.html, 'csrf'), error: 'access_denied' },
      });
      expect(tppError(cancel.location!).error).toBe('access_denied');
      expect(h.logs.some((l) => l.event === 'federation.no_moat_factor' && l.accountId === 'cust-bob' && l.detail === 'below_sca')).toBe(true);
      // Nothing was authorised for him (test/integration/federated-payments.test.ts steps such a login up).
      const { rows } = await h.moat.storage.sql.query("SELECT id FROM consent WHERE customer_id = $1 AND status = 'Authorised'", ['cust-bob']);
      expect(rows).toEqual([]);
    } finally {
      await journey.moat.close();
    }
  });
});

describe('payments by a federated customer (RTS Art. 5: dynamic linking)', () => {
  it('never authorises a payment on the upstream login alone, which never saw its amount and payee: without a Moat factor to link it, the TPP gets access_denied', async () => {
    const payment = JSON.stringify([
      {
        type: 'payment_initiation',
        instructedAmount: { amount: '12.34', currency: 'GBP' },
        creditorName: 'Corner Shop Ltd',
        creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223344556677' },
      },
    ]);
    const { requestUri } = await pushAuthorization(tpp, { scope: 'openid payments', extraParams: { authorization_details: payment } });
    const journey = await federatedCustomer(h, tpp, idp, requestUri, { keepBrowser: true });
    try {
      // test/integration/federated-payments.test.ts confirms one with Moat's linked code.
      expect(journey.page?.status).toBe(403);
      expect(journey.page?.html).toContain('Set up a way to confirm payments');
      const uid = new URL(journey.page!.url, h.issuer).pathname.split('/')[2]!;
      const cancel = await journey.moat.follow(`/interaction/${uid}/federated/abandon`, {
        method: 'POST',
        form: { csrf: hiddenField(journey.page!.html, 'csrf'), error: 'access_denied' },
      });
      expect(tppError(cancel.location!).error).toBe('access_denied');
      const { rows } = await h.moat.storage.sql.query(
        "SELECT id FROM consent WHERE customer_id = $1 AND status = 'Authorised' AND requested->>'type' = 'payment_initiation'",
        ['cust-alice'],
      );
      expect(rows).toEqual([]);
    } finally {
      await journey.moat.close();
    }
  });
});

describe('the consent dashboard for federated customers', () => {
  /** /account/login → the bank's sign-in → back to the dashboard, in one browser per origin. */
  async function dashboardSignIn(user: { username: string; password: string }): Promise<{ moat: Browser; landed: { status: number; html: string } }> {
    const moat = new Browser(h, tpp.creds.serverCaPem);
    const bank = new Browser({ issuer: idp.issuer } as Harness, idp.caPem);
    try {
      const start = await moat.follow('/account/login');
      expect(start.location?.startsWith(idp.issuer)).toBe(true);
      const loginPage = await bank.follow(start.location!);
      const uid = new URL(loginPage.url, idp.issuer).pathname.split('/')[2]!;
      const signedIn = await bank.follow(`/interaction/${uid}/login`, { method: 'POST', form: user });
      const back = await moat.follow(signedIn.location!);
      return { moat, landed: { status: back.res.status, html: await back.res.text() } };
    } finally {
      await bank.close();
    }
  }

  it('signs the customer in at the bank and lists the consents they gave as a federated customer', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    expect((await federatedCustomer(h, tpp, idp, requestUri)).tppLocation).toBeDefined();
    const { moat, landed } = await dashboardSignIn({ username: 'alice', password: 'alice-bank' });
    try {
      expect(landed.status).toBe(200);
      expect(landed.html).toContain('url=/account/consents');
      const dashboard = await moat.request('/account/consents');
      expect(dashboard.status).toBe(200);
      const html = await dashboard.text();
      expect(html).toContain('Alice B. Example');
      expect(html).toContain('Test Fintech');
    } finally {
      await moat.close();
    }
  });

  it('refuses a dashboard sign-in that is not SCA, and the password form', async () => {
    const { moat, landed } = await dashboardSignIn({ username: 'bob', password: 'bob-bank' });
    try {
      expect(landed.status).toBe(403);
      expect(landed.html).toContain('A stronger sign-in is needed');
      expect(landed.html).toContain('href="/account/login"');
      const dashboard = await moat.follow('/account/consents');
      expect(dashboard.location?.startsWith(idp.issuer)).toBe(true);
      const password = await moat.request('/account/login', { method: 'POST', form: { username: 'alice', password: 'alice-sandbox', csrf: 'x' } });
      expect(password.status).toBe(400);
    } finally {
      await moat.close();
    }
  });
});

describe('when the bank IdP fails', () => {
  /** A failure page: the bank's sign-in unavailable, a retry link to the interaction, a cancel form. */
  async function expectUnavailablePage(journey: Awaited<ReturnType<typeof federatedCustomer>>, status = 503): Promise<string> {
    expect(journey.tppLocation).toBeUndefined();
    expect(journey.page?.status).toBe(status);
    const html = journey.page!.html;
    expect(html).toContain('Your bank&#39;s sign-in is unavailable');
    const uid = new URL(journey.page!.url, h.issuer).pathname.split('/')[2]!;
    expect(html).toContain(`href="/interaction/${uid}"`);
    expect(html).not.toMatch(/at .*\.ts:\d+/);
    return uid;
  }

  it('shows the unavailable page when the token endpoint answers 500, and the retry link then finishes the sign-in', async () => {
    const { requestUri, codeVerifier } = await pushAuthorization(tpp);
    idp.misbehave.tokenServerError = true;
    const journey = await federatedCustomer(h, tpp, idp, requestUri, { keepBrowser: true });
    try {
      const uid = await expectUnavailablePage(journey);
      expect(failures('error_response').length).toBeGreaterThan(0);
      delete idp.misbehave.tokenServerError;
      // The interaction is still alive: the retry link goes back to the bank, on to consent and to the TPP.
      const retried = await federatedCustomer(h, tpp, idp, requestUri, { resume: { browser: journey.moat, path: `/interaction/${uid}` }, keepBrowser: true });
      const tokens = await redeem(retried.tppLocation!, codeVerifier);
      expect(oauth.getValidatedIdTokenClaims(tokens)!.sub).toBe('cust-alice');
    } finally {
      await journey.moat.close();
    }
  });

  it('classifies a slow IdP as a timeout and lets the customer return to the TPP with temporarily_unavailable', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    idp.misbehave.hangOn = '/token';
    const journey = await federatedCustomer(h, tpp, idp, requestUri, { keepBrowser: true });
    try {
      const uid = await expectUnavailablePage(journey);
      expect(failures('timeout').length).toBeGreaterThan(0);
      const cancel = await journey.moat.follow(`/interaction/${uid}/federated/abandon`, {
        method: 'POST',
        form: { csrf: hiddenField(journey.page!.html, 'csrf'), error: 'temporarily_unavailable' },
      });
      expect(tppError(cancel.location!).error).toBe('temporarily_unavailable');
    } finally {
      await journey.moat.close();
    }
  });

  it.each([
    ['an authorization response that names another issuer (RFC 9207 §2.4)', { issuerInResponse: 'https://attacker.example' }, 'wrong_issuer'],
    ['an ID token whose nonce is not the one sent (OIDC Core §3.1.3.7)', { nonceInIdToken: 'a-nonce-from-another-sign-in' }, 'wrong_nonce'],
    ['an ID token signed with a key the IdP does not publish', { foreignSigningKey: true }, 'invalid_id_token'],
  ] as const)('refuses %s', async (_what, misbehaviour, kind) => {
    const { requestUri } = await pushAuthorization(tpp);
    Object.assign(idp.misbehave, misbehaviour);
    const journey = await federatedCustomer(h, tpp, idp, requestUri);
    await expectUnavailablePage(journey);
    expect(failures(kind).length).toBeGreaterThan(0);
  });

  it('refuses a replayed callback (RFC 6749 §10.12): the state is spent', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    const journey = await federatedCustomer(h, tpp, idp, requestUri, { keepBrowser: true });
    try {
      expect(journey.tppLocation).toBeDefined();
      const replay = await journey.moat.follow(journey.callbackUrl!);
      expect(replay.res.status).toBe(400);
      expect(await replay.res.text()).toContain('already been used or has expired');
      expect(failures('unknown_state').length).toBeGreaterThan(0);
    } finally {
      await journey.moat.close();
    }
    // From another browser (login CSRF), the callback finds nothing either.
    const stranger = new Browser(h, tpp.creds.serverCaPem);
    try {
      const res = await stranger.request(journey.callbackUrl!);
      expect(res.status).toBe(400);
    } finally {
      await stranger.close();
    }
  });

  it('counts every failure by kind in moat_upstream_idp_failures_total', async () => {
    const metrics = await scrapeMetrics(h);
    for (const kind of ['timeout', 'wrong_issuer', 'wrong_nonce', 'unknown_state', 'error_response', 'invalid_id_token']) {
      expect(sampleSum(metrics, 'moat_upstream_idp_failures_total', { kind })).toBeGreaterThan(0);
    }
    expect(sampleSum(metrics, 'moat_upstream_idp_failures_total', { kind: 'unreachable' })).toBe(0);
  });

  it('shows the unavailable page when the IdP is down, and finishes the sign-in by the retry link once it is back', async () => {
    const { requestUri, codeVerifier } = await pushAuthorization(tpp);
    await idp.stop();
    const moat = new Browser(h, tpp.creds.serverCaPem);
    try {
      const start = await moat.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      expect(start.location).toBeUndefined();
      expect(start.res.status).toBe(503);
      const html = await start.res.text();
      expect(html).toContain('Your bank&#39;s sign-in is unavailable');
      expect(failures('unreachable').length).toBeGreaterThan(0);
      await idp.resume();
      const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
      const retried = await federatedCustomer(h, tpp, idp, requestUri, { resume: { browser: moat, path: `/interaction/${uid}` }, keepBrowser: true });
      const tokens = await redeem(retried.tppLocation!, codeVerifier);
      expect(oauth.getValidatedIdTokenClaims(tokens)!.sub).toBe('cust-alice');
    } finally {
      await moat.close();
    }
  });
});

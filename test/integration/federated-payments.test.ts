import * as oauth from 'oauth4webapi';
import { decodeJwt } from 'jose';
import { totpCode, TOTP_PERIOD_SECONDS } from '../../src/sca/totp.ts';
import { federatedCustomer, SCA_ACR_AT_BANK, useMoatWithBankIdp, type BankIdp } from '../support/bank-idp.ts';
import { adminRequest } from '../support/admin-api.ts';
import { adminToken } from '../support/admin-metrics.ts';
import type { Harness } from '../support/moat-harness.ts';
import { Browser, hiddenField, pushAuthorization, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Customers of the bank's own IdP (customers.source: oidc) and Moat's own factor after the bank's
 * sign-in, against a real second oidc-provider:
 * - a payment needs an authentication linked to its amount and payee (PSD2 RTS on SCA, Art. 5),
 *   which the upstream login never saw: Moat asks for its one-time code on a page that shows both;
 * - an upstream login the bank's mapping does not count as SCA is stepped up by that code (Art. 4),
 *   or refused when customers.oidc.sca.belowSca says so or the customer has no Moat factor.
 * The clock Moat reads is the test's: each code is computed for its own time step, never slept for.
 */

let clock = Date.now();
const now = () => new Date(clock);
/** The next 30-second step's code: Moat accepts each step once (RFC 6238 §5.2). */
function nextCode(secret: string): string {
  clock += TOTP_PERIOD_SECONDS * 1000;
  return totpCode(secret, now());
}

const PAYMENT = JSON.stringify([
  {
    type: 'payment_initiation',
    instructedAmount: { amount: '12.34', currency: 'GBP' },
    creditorName: 'Corner Shop Ltd',
    creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223344556677' },
  },
]);

interface Started {
  idp: BankIdp;
  h: Harness;
  tpp: RegisteredTpp;
}

function tppError(location: string): string | null {
  return new URL(location).searchParams.get('error');
}

async function redeem(s: Started, location: string, codeVerifier: string): Promise<oauth.TokenEndpointResponse> {
  const params = oauth.validateAuthResponse(s.tpp.as, s.tpp.client, new URL(location), oauth.skipStateCheck);
  const res = await oauth.authorizationCodeGrantRequest(s.tpp.as, s.tpp.client, oauth.TlsClientAuth(), params, s.tpp.redirectUri, codeVerifier, {
    [oauth.customFetch]: s.tpp.fetch,
  });
  return oauth.processAuthorizationCodeResponse(s.tpp.as, s.tpp.client, res);
}

/** /account/login → the bank's sign-in → back to the dashboard; the Moat browser is the caller's to close. */
async function dashboardSignIn(s: Started, user: { username: string; password: string; second_factor?: string }): Promise<{ moat: Browser; landed: string }> {
  const moat = new Browser(s.h, s.tpp.creds.serverCaPem);
  const bank = new Browser({ issuer: s.idp.issuer } as Harness, s.idp.caPem);
  try {
    const start = await moat.follow('/account/login');
    const loginPage = await bank.follow(start.location!);
    const uid = new URL(loginPage.url, s.idp.issuer).pathname.split('/')[2]!;
    const signedIn = await bank.follow(`/interaction/${uid}/login`, { method: 'POST', form: user });
    const back = await moat.follow(signedIn.location!);
    expect(back.res.status).toBe(200);
    return { moat, landed: await back.res.text() };
  } finally {
    await bank.close();
  }
}

/** Sets up an authenticator app from the dashboard, as the customer does; returns its secret. */
async function enrolTotp(s: Started, user: { username: string; password: string; second_factor?: string }): Promise<string> {
  const { moat } = await dashboardSignIn(s, user);
  try {
    const security = await (await moat.request('/account/security')).text();
    const started = await (await moat.request('/account/security/totp/start', { method: 'POST', form: { csrf: hiddenField(security, 'csrf') } })).text();
    const secret = /<code id="totp-secret">([A-Z2-7]+)<\/code>/.exec(started)![1]!;
    const confirmed = await moat.request('/account/security/totp/confirm', {
      method: 'POST',
      form: { csrf: hiddenField(started, 'csrf'), code: nextCode(secret) },
    });
    expect(confirmed.headers.get('location')).toBe('/account/security?done=enrolled');
    return secret;
  } finally {
    await moat.close();
  }
}

describe('a payment by a customer of the bank IdP (RTS Art. 5: Moat links it after the bank sign-in)', () => {
  let s: Started;
  useMoatWithBankIdp(
    (started) => {
      s = started;
    },
    { now },
  );
  let aliceSecret: string;

  it('tells a customer without a Moat factor how to set one up, and sends the TPP access_denied when they go back', async () => {
    const { requestUri } = await pushAuthorization(s.tpp, { scope: 'openid payments', extraParams: { authorization_details: PAYMENT } });
    const journey = await federatedCustomer(s.h, s.tpp, s.idp, requestUri, { keepBrowser: true });
    try {
      expect(journey.tppLocation).toBeUndefined();
      expect(journey.page?.status).toBe(403);
      const html = journey.page!.html;
      expect(html).toContain('Set up a way to confirm payments');
      expect(html).toContain('href="/account/security"');
      expect(html).not.toMatch(/at .*\.ts:\d+/);
      const uid = new URL(journey.page!.url, s.h.issuer).pathname.split('/')[2]!;
      const back = await journey.moat.follow(`/interaction/${uid}/federated/abandon`, {
        method: 'POST',
        form: { csrf: hiddenField(html, 'csrf'), error: 'access_denied' },
      });
      expect(tppError(back.location!)).toBe('access_denied');
      expect(s.h.logs.some((l) => l.event === 'federation.no_moat_factor' && l.accountId === 'cust-alice' && l.detail === 'payment_link')).toBe(true);
    } finally {
      await journey.moat.close();
    }
  });

  it("lets the customer set up an authenticator app from the dashboard after signing in at the bank, under the IdP's customer id", async () => {
    aliceSecret = await enrolTotp(s, { username: 'alice', password: 'alice-bank' });
    const { rows } = await s.h.moat.storage.sql.query<{ confirmed_at: Date | null }>('SELECT confirmed_at FROM customer_totp WHERE customer_id = $1', [
      'cust-alice',
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.confirmed_at).not.toBeNull();
  });

  it('asks for the code on a page that shows the amount and the payee, after the bank sign-in', async () => {
    const { requestUri } = await pushAuthorization(s.tpp, { scope: 'openid payments', extraParams: { authorization_details: PAYMENT } });
    const journey = await federatedCustomer(s.h, s.tpp, s.idp, requestUri, { consent: false });
    expect(journey.page?.status).toBe(200);
    const html = journey.page!.html;
    expect(html).toContain('Confirm the payment with your code');
    expect(html).toContain('Alice B. Example');
    expect(html).toMatch(/£12\.34|GBP 12\.34|12\.34/);
    expect(html).toContain('Corner Shop Ltd');
    expect(hiddenField(html, 'payment_link')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("authorises the payment with the code: the ID token says SCA with the bank's methods and otp, and the consent keeps what the code was linked to", async () => {
    const { requestUri, codeVerifier } = await pushAuthorization(s.tpp, { scope: 'openid payments', extraParams: { authorization_details: PAYMENT } });
    const journey = await federatedCustomer(s.h, s.tpp, s.idp, requestUri, { code: () => nextCode(aliceSecret) });
    expect(journey.tppLocation).toBeDefined();
    expect(tppError(journey.tppLocation!)).toBeNull();
    const tokens = await redeem(s, journey.tppLocation!, codeVerifier);
    const idToken = decodeJwt(tokens.id_token!);
    expect(idToken.sub).toBe('cust-alice');
    expect(idToken.acr).toBe('urn:openbanking:psd2:sca');
    expect(idToken.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    const { rows } = await s.h.moat.storage.sql.query<{
      sca_acr: string;
      sca_amr: string[];
      sca_link: { amount: string; creditorName: string };
      sca_link_hash: string;
    }>("SELECT sca_acr, sca_amr, sca_link, sca_link_hash FROM consent WHERE customer_id = $1 AND status = 'Authorised' AND sca_link IS NOT NULL", [
      'cust-alice',
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.sca_acr).toBe('urn:openbanking:psd2:sca');
    expect(rows[0]!.sca_link).toEqual(expect.objectContaining({ amount: '12.34', creditorName: 'Corner Shop Ltd' }));
    expect(rows[0]!.sca_link_hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('refuses a code sent for other payment values than the page showed (RTS Art. 5(1)(d)), and a wrong code, on the page', async () => {
    const { requestUri } = await pushAuthorization(s.tpp, { scope: 'openid payments', extraParams: { authorization_details: PAYMENT } });
    const journey = await federatedCustomer(s.h, s.tpp, s.idp, requestUri, { consent: false, keepBrowser: true });
    try {
      const html = journey.page!.html;
      const uid = new URL(journey.page!.url, s.h.issuer).pathname.split('/')[2]!;
      const changed = await journey.moat.request(`/interaction/${uid}/totp`, {
        method: 'POST',
        form: { csrf: hiddenField(html, 'csrf'), payment_link: 'A'.repeat(43), code: totpCode(aliceSecret, now()) },
      });
      expect(changed.status).toBe(409);
      expect(await changed.text()).toContain('The payment details changed');
      const wrong = await journey.moat.request(`/interaction/${uid}/totp`, {
        method: 'POST',
        form: { csrf: hiddenField(html, 'csrf'), payment_link: hiddenField(html, 'payment_link'), code: '12a456' },
      });
      expect(wrong.status).toBe(400);
      expect(await wrong.text()).toContain('no letters');
    } finally {
      await journey.moat.close();
    }
  });

  it("asks for Moat's code when threat detection wants a fresh SCA and the bank answered from an earlier sign-in of its own (its auth_time)", async () => {
    const stepped = await adminRequest(s.h.moat.adminPort!, 'POST', `/clients/${s.tpp.client.client_id}/step-up`, {
      token: adminToken(s.h),
      body: { reason: 'test: unusual activity', seconds: 600 },
    });
    expect(stepped.status).toBe(200);
    s.idp.misbehave.authTimeAgoSeconds = 600;
    try {
      const { requestUri } = await pushAuthorization(s.tpp);
      const shown = await federatedCustomer(s.h, s.tpp, s.idp, requestUri, { consent: false });
      expect(shown.page?.html).toContain('For your security, confirm it is you with one more step.');
      const { requestUri: again, codeVerifier } = await pushAuthorization(s.tpp);
      const journey = await federatedCustomer(s.h, s.tpp, s.idp, again, { code: () => nextCode(aliceSecret) });
      const idToken = decodeJwt((await redeem(s, journey.tppLocation!, codeVerifier)).id_token!);
      expect(idToken.acr).toBe('urn:openbanking:psd2:sca');
      expect(idToken.amr).toContain('otp');
      expect(s.h.logs.some((l) => l.event === 'federation.moat_step' && l.outcome === 'not_fresh')).toBe(true);
    } finally {
      delete s.idp.misbehave.authTimeAgoSeconds;
    }
    // A sign-in made at the bank in this very interaction is fresh: on to consent with no code asked.
    const { requestUri } = await pushAuthorization(s.tpp);
    const fresh = await federatedCustomer(s.h, s.tpp, s.idp, requestUri);
    expect(fresh.page?.html).not.toContain('name="code"');
    expect(fresh.tppLocation).toBeDefined();
    expect(tppError(fresh.tppLocation!)).toBeNull();
  });
});

describe("an upstream login below SCA, stepped up by Moat's code (RTS Art. 4; customers.oidc.sca.belowSca: step_up)", () => {
  let s: Started;
  useMoatWithBankIdp(
    (started) => {
      s = started;
    },
    { now },
  );
  let bobSecret: string;

  it('refuses it with a clear page while the customer has no Moat factor', async () => {
    const { requestUri } = await pushAuthorization(s.tpp);
    const journey = await federatedCustomer(s.h, s.tpp, s.idp, requestUri, { user: { username: 'bob', password: 'bob-bank' } });
    expect(journey.page?.status).toBe(403);
    expect(journey.page?.html).toContain('A stronger sign-in is needed');
    expect(s.h.logs.some((l) => l.event === 'federation.no_moat_factor' && l.accountId === 'cust-bob' && l.detail === 'below_sca')).toBe(true);
  });

  it('steps it up with the code of an app the customer set up after a strong sign-in at the bank: the ID token says SCA', async () => {
    // Setting the factor up took SCA at the bank (password and code there); today's sign-in is a password alone.
    const secret = await enrolTotp(s, { username: 'bob', password: 'bob-bank', second_factor: 'otp' });
    bobSecret = secret;
    const { requestUri, codeVerifier } = await pushAuthorization(s.tpp);
    const journey = await federatedCustomer(s.h, s.tpp, s.idp, requestUri, { user: { username: 'bob', password: 'bob-bank' }, code: () => nextCode(secret) });
    expect(journey.tppLocation).toBeDefined();
    const tokens = await redeem(s, journey.tppLocation!, codeVerifier);
    const idToken = decodeJwt(tokens.id_token!);
    expect(idToken.sub).toBe('cust-bob');
    expect(idToken.acr).toBe('urn:openbanking:psd2:sca');
    expect(idToken.amr).toEqual(['pwd', 'otp', 'mfa']);
    expect(s.h.logs.some((l) => l.event === 'federation.moat_step' && l.outcome === 'below_sca' && l.accountId === 'cust-bob')).toBe(true);
  });

  it('steps a dashboard sign-in below SCA up with the code as well: the dashboard opens only after it', async () => {
    const { moat, landed } = await dashboardSignIn(s, { username: 'bob', password: 'bob-bank' });
    try {
      expect(landed).toContain('url=/account/login/code');
      // Nobody is signed in before the code.
      expect((await moat.request('/account/consents')).headers.get('location')).toBe('/account/login');
      const codePage = await (await moat.request('/account/login/code')).text();
      const coded = await moat.request('/account/login/code', { method: 'POST', form: { csrf: hiddenField(codePage, 'csrf'), code: nextCode(bobSecret) } });
      expect(coded.headers.get('location')).toBe('/account/consents');
      expect((await moat.request('/account/consents')).status).toBe(200);
    } finally {
      await moat.close();
    }
  });

  it('says on the code page that one more step makes the sign-in strong', async () => {
    const { requestUri } = await pushAuthorization(s.tpp);
    const journey = await federatedCustomer(s.h, s.tpp, s.idp, requestUri, { user: { username: 'bob', password: 'bob-bank' }, consent: false });
    expect(journey.page?.status).toBe(200);
    expect(journey.page?.html).toContain('Your bank sign-in used one factor');
    expect(journey.page?.html).toContain('name="code"');
  });
});

describe('customers.oidc.sca.belowSca: refuse', () => {
  let s: Started;
  useMoatWithBankIdp(
    (started) => {
      s = started;
    },
    { now, oidc: { sca: { acrValues: [SCA_ACR_AT_BANK], belowSca: 'refuse' } } },
  );

  it('refuses a login below SCA even from a customer with a Moat factor, and the TPP gets access_denied when they go back', async () => {
    await enrolTotp(s, { username: 'bob', password: 'bob-bank', second_factor: 'otp' });
    const { requestUri } = await pushAuthorization(s.tpp);
    const journey = await federatedCustomer(s.h, s.tpp, s.idp, requestUri, { user: { username: 'bob', password: 'bob-bank' }, keepBrowser: true });
    try {
      expect(journey.page?.status).toBe(403);
      expect(journey.page?.html).toContain('A stronger sign-in is needed');
      expect(journey.page?.html).not.toContain('name="code"');
      const uid = new URL(journey.page!.url, s.h.issuer).pathname.split('/')[2]!;
      const back = await journey.moat.follow(`/interaction/${uid}/federated/abandon`, {
        method: 'POST',
        form: { csrf: hiddenField(journey.page!.html, 'csrf'), error: 'access_denied' },
      });
      expect(tppError(back.location!)).toBe('access_denied');
    } finally {
      await journey.moat.close();
    }
  });

  it('lets the operator reset the one-time code of a customer of the bank IdP (audited), and answers 404 for one the IdP never vouched for', async () => {
    const call = (path: string) =>
      adminRequest(s.h.moat.adminPort!, 'POST', path, { token: adminToken(s.h), body: { reason: 'lost phone, identity checked by the bank' } });
    expect((await call('/customers/cust-nobody/factors/totp/reset')).status).toBe(404);
    const reset = await call('/customers/cust-bob/factors/totp/reset');
    expect(reset).toEqual({ status: 200, body: { customerId: 'cust-bob', factor: 'totp', removed: true } });
    expect((await s.h.moat.storage.sql.query('SELECT 1 FROM customer_totp WHERE customer_id = $1', ['cust-bob'])).rows).toHaveLength(0);
    await s.h.moat.audit.drain();
    expect(await s.h.moat.audit.query({ customerId: 'cust-bob', type: 'factor.reset' })).toHaveLength(1);
  });
});

import { decodeJwt } from 'jose';
import { totpCode, TOTP_PERIOD_SECONDS } from '../../src/sca/totp.ts';
import { adminToken } from '../support/admin-metrics.ts';
import { adminRequest } from '../support/admin-api.ts';
import { introspect } from '../support/consents.ts';
import type { Harness } from '../support/moat-harness.ts';
import {
  authorizationCodeFlow,
  Browser,
  hiddenField,
  pushAuthorization,
  signInAtInteraction,
  type RegisteredTpp,
  useMoatWithTpp,
} from '../support/tpp-client.ts';
import { createCustomer, serverSecretBox, type TestCustomer } from './support.ts';

/*
 * One-time codes (RFC 6238) as the second factor of strong customer authentication (PSD2 RTS on SCA
 * Art. 4), on the backend of this run: enrolment from the dashboard, sign-in with a computed code,
 * each code accepted once, wrong codes throttled atomically, secrets encrypted at rest, bad input
 * answered on the page, removal behind SCA and the operator's audited reset.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started), { config: { sca: { totp: { failures: 5 } } } });

/** The interaction for a fresh authorization, at its sign-in page. */
async function atSignIn(browser: Browser, scope = 'openid'): Promise<{ uid: string; csrf: string }> {
  const { requestUri } = await pushAuthorization(tpp, { scope });
  const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
  return { uid: new URL(start.url, h.issuer).pathname.split('/')[2]!, csrf: hiddenField(await start.res.text(), 'csrf') };
}

/** After the password: the code page of the interaction. */
async function atCodePage(browser: Browser, customer: TestCustomer): Promise<{ uid: string; csrf: string }> {
  const { uid, csrf } = await atSignIn(browser);
  const login = await browser.follow(`/interaction/${uid}/login`, { method: 'POST', form: { username: customer.username, password: customer.password, csrf } });
  const page = await login.res.text();
  expect(page).toContain(`action="/interaction/${uid}/totp"`);
  return { uid, csrf: hiddenField(page, 'csrf') };
}

/** A six-digit code no step of the window (±1) matches now. */
function wrongCode(secret: string): string {
  const valid = new Set([-1, 0, 1].map((d) => totpCode(secret, new Date(Date.now() + d * TOTP_PERIOD_SECONDS * 1000))));
  for (let n = 0; ; n += 1) {
    const candidate = String(n).padStart(6, '0');
    if (!valid.has(candidate)) return candidate;
  }
}

describe('enrolling an authenticator app from the dashboard (issue 16 §1)', () => {
  let carol: TestCustomer;
  beforeAll(async () => {
    carol = await createCustomer(h, 'carol');
  });

  it('sets one up after the password, confirmed by a computed code, with the secret encrypted at rest', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const loginPage = await (await browser.request('/account/login')).text();
      const signedIn = await browser.request('/account/login', {
        method: 'POST',
        form: { username: carol.username, password: carol.password, csrf: hiddenField(loginPage, 'csrf') },
      });
      // No factor yet: nothing to ask after the password.
      expect(signedIn.headers.get('location')).toBe('/account/consents');
      const security = await (await browser.request('/account/security')).text();
      expect(security).toContain('Set up an authenticator app');
      const started = await browser.request('/account/security/totp/start', { method: 'POST', form: { csrf: hiddenField(security, 'csrf') } });
      expect(started.status).toBe(200);
      const page = await started.text();
      const secret = /<code id="totp-secret">([A-Z2-7]+)<\/code>/.exec(page)![1]!;
      expect(page).toContain('otpauth://totp/');
      const csrf = hiddenField(page, 'csrf');

      // Bad input is answered on the page, and nothing is enrolled half-way.
      for (const [typed, message] of [
        ['', /Enter the 6-digit code/],
        ['12a456', /digits, with no letters/],
        ['12345', /you entered 5/],
        [wrongCode(secret), /not right/],
      ] as const) {
        const res = await browser.request('/account/security/totp/confirm', { method: 'POST', form: { csrf, code: typed } });
        expect([400, 401]).toContain(res.status);
        expect(await res.text()).toMatch(message);
        const { rows } = await h.moat.storage.sql.query<{ confirmed_at: Date | null }>('SELECT confirmed_at FROM customer_totp WHERE customer_id = $1', [
          carol.id,
        ]);
        expect(rows[0]!.confirmed_at).toBeNull();
      }

      const confirmed = await browser.request('/account/security/totp/confirm', { method: 'POST', form: { csrf, code: totpCode(secret, new Date()) } });
      expect(confirmed.status).toBe(302);
      expect(confirmed.headers.get('location')).toBe('/account/security?done=enrolled');

      const { rows } = await h.moat.storage.sql.query<{ secret_encrypted: string; confirmed_at: Date | null }>(
        'SELECT secret_encrypted, confirmed_at FROM customer_totp WHERE customer_id = $1',
        [carol.id],
      );
      expect(rows[0]!.confirmed_at).not.toBeNull();
      expect(rows[0]!.secret_encrypted).not.toContain(secret);
      expect(rows[0]!.secret_encrypted).toMatch(/^v1\./);
      expect(serverSecretBox(h).open(rows[0]!.secret_encrypted, carol.id)).toBe(secret);
      // Bound to the customer: the same ciphertext on another row does not decrypt.
      expect(() => serverSecretBox(h).open(rows[0]!.secret_encrypted, 'cust-alice')).toThrow('could not be decrypted');
      carol.totpSecret = secret;
      await h.moat.audit.drain();
      expect(await h.moat.audit.query({ customerId: carol.id, type: 'factor.enrolled' })).toHaveLength(1);
    } finally {
      await browser.close();
    }
  });

  it('then asks for the code at sign-in, and the ID token and introspection say pwd + otp = SCA (RFC 8176)', async () => {
    // The confirmation used this time step's code; the app's next one (within the window) signs in.
    const next = totpCode(carol.totpSecret!, new Date(Date.now() + TOTP_PERIOD_SECONDS * 1000));
    const { tokens } = await authorizationCodeFlow(h, tpp, { scope: 'openid', customer: carol as Required<TestCustomer>, totpCode: next });
    const idToken = decodeJwt(tokens.id_token!);
    expect(idToken).toEqual(expect.objectContaining({ sub: carol.id, acr: 'urn:openbanking:psd2:sca', amr: ['pwd', 'otp', 'mfa'] }));
    expect(typeof idToken.auth_time).toBe('number');
    const introspection = await introspect(tpp, tokens.access_token);
    expect(introspection).toEqual(expect.objectContaining({ active: true, acr: 'urn:openbanking:psd2:sca', amr: ['pwd', 'otp', 'mfa'] }));
  });
});

describe('a code at sign-in (RFC 6238)', () => {
  let erin: TestCustomer;
  let frank: TestCustomer;
  beforeAll(async () => {
    erin = await createCustomer(h, 'erin', { totp: true });
    frank = await createCustomer(h, 'frank', { totp: true });
  });

  it('is accepted once: the same code in a second sign-in is refused (§5.2)', async () => {
    const code = totpCode(erin.totpSecret!, new Date());
    const first = new Browser(h, tpp.creds.serverCaPem);
    const second = new Browser(h, tpp.creds.serverCaPem);
    try {
      const a = await atSignIn(first);
      const ok = await signInAtInteraction(first, a.uid, a.csrf, erin, { totpCode: code });
      expect(ok.res.status).toBe(200);
      expect(await ok.res.text()).toContain('/consent"');
      const b = await atSignIn(second);
      const replayed = await signInAtInteraction(second, b.uid, b.csrf, erin, { totpCode: code });
      expect(replayed.res.status).toBe(401);
      expect(await replayed.res.text()).toContain('That code was already used');
    } finally {
      await first.close();
      await second.close();
    }
  });

  it.each([
    ['empty', '', /Enter the 6-digit code/],
    ['letters', 'abc123', /digits, with no letters/],
    ['too short', '1234', /you entered 4/],
    ['too long', '1234567', /you entered 7/],
    ['full of symbols', '<script>', /digits, with no letters/],
  ])('answers a code that is %s with the page and a clear message, never a 500', async (_what, typed, message) => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const { uid, csrf } = await atCodePage(browser, frank);
      const res = await browser.request(`/interaction/${uid}/totp`, { method: 'POST', form: { csrf, code: typed } });
      expect(res.status).toBe(400);
      const page = await res.text();
      expect(page).toMatch(message);
      expect(page).toContain(`action="/interaction/${uid}/totp"`);
      expect(page).not.toContain('<script>');
    } finally {
      await browser.close();
    }
  });

  it('is refused without the password step before it', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const { uid, csrf } = await atSignIn(browser);
      const res = await browser.request(`/interaction/${uid}/totp`, { method: 'POST', form: { csrf, code: totpCode(frank.totpSecret!, new Date()) } });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain('Sign in with your username and password first.');
    } finally {
      await browser.close();
    }
  });
});

describe('wrong codes, throttled like passwords', () => {
  it('evaluates at most the configured number (5) of 50 wrong codes sent at once, then locks', async () => {
    const gina = await createCustomer(h, 'gina', { totp: true });
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const { uid, csrf } = await atCodePage(browser, gina);
      const wrong = wrongCode(gina.totpSecret!);
      const statuses = await Promise.all(
        Array.from({ length: 50 }, () => browser.request(`/interaction/${uid}/totp`, { method: 'POST', form: { csrf, code: wrong } }).then((r) => r.status)),
      );
      // 401: evaluated and wrong; 429: refused by the lock (the fifth failure locks, and says so).
      expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(5);
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(45);
      // Locked: even the right code is not looked at now.
      const right = await browser.request(`/interaction/${uid}/totp`, { method: 'POST', form: { csrf, code: totpCode(gina.totpSecret!, new Date()) } });
      expect(right.status).toBe(429);
      expect(right.headers.get('retry-after')).toMatch(/^\d+$/);
    } finally {
      await browser.close();
    }
  });
});

describe('removing the factor (issue 16 §1, §4)', () => {
  it('needs a strong dashboard session: a password-only session is refused with a page', async () => {
    const henry = await createCustomer(h, 'henry');
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const loginPage = await (await browser.request('/account/login')).text();
      await browser.request('/account/login', {
        method: 'POST',
        form: { username: henry.username, password: henry.password, csrf: hiddenField(loginPage, 'csrf') },
      });
      const security = await (await browser.request('/account/security')).text();
      const res = await browser.request('/account/security/totp/remove', { method: 'POST', form: { csrf: hiddenField(security, 'csrf') } });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain('sign in with your password and a code');
    } finally {
      await browser.close();
    }
  });

  it('removes it from a session signed in with password and code', async () => {
    const ivy = await createCustomer(h, 'ivy', { totp: true });
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const loginPage = await (await browser.request('/account/login')).text();
      const password = await browser.request('/account/login', {
        method: 'POST',
        form: { username: ivy.username, password: ivy.password, csrf: hiddenField(loginPage, 'csrf') },
      });
      expect(password.headers.get('location')).toBe('/account/login/code');
      // Not signed in until the code: the consents are not shown.
      expect((await browser.request('/account/consents')).headers.get('location')).toBe('/account/login');
      const codePage = await (await browser.request('/account/login/code')).text();
      const bad = await browser.request('/account/login/code', { method: 'POST', form: { csrf: hiddenField(codePage, 'csrf'), code: 'x' } });
      expect(bad.status).toBe(400);
      const done = await browser.request('/account/login/code', {
        method: 'POST',
        form: { csrf: hiddenField(codePage, 'csrf'), code: totpCode(ivy.totpSecret!, new Date()) },
      });
      expect(done.headers.get('location')).toBe('/account/consents');
      const security = await (await browser.request('/account/security')).text();
      const removed = await browser.request('/account/security/totp/remove', { method: 'POST', form: { csrf: hiddenField(security, 'csrf') } });
      expect(removed.headers.get('location')).toBe('/account/security?done=removed');
      expect((await h.moat.storage.sql.query('SELECT 1 FROM customer_totp WHERE customer_id = $1', [ivy.id])).rows).toHaveLength(0);
      await h.moat.audit.drain();
      expect(await h.moat.audit.query({ customerId: ivy.id, type: 'factor.removed' })).toHaveLength(1);
    } finally {
      await browser.close();
    }
  });

  it('is reset by an operator through the admin API, audited with the operator and the reason', async () => {
    const jack = await createCustomer(h, 'jack', { totp: true });
    const call = (path: string, body?: unknown) =>
      adminRequest(h.moat.adminPort!, 'POST', path, { token: adminToken(h), ...(body === undefined ? {} : { body }) });
    expect((await call(`/customers/${jack.id}/factors/totp/reset`)).status).toBe(400);
    expect((await call('/customers/cust-nobody/factors/totp/reset', { reason: 'lost phone' })).status).toBe(404);
    const reset = await call(`/customers/${jack.id}/factors/totp/reset`, { reason: 'lost phone, identity checked in branch' });
    expect(reset).toEqual({ status: 200, body: { customerId: jack.id, factor: 'totp', removed: true } });
    await h.moat.audit.drain();
    const [record] = await h.moat.audit.query({ customerId: jack.id, type: 'factor.reset' });
    expect(record).toEqual(
      expect.objectContaining({ actor: 'operator', actorId: 'admin-token', detail: { factor: 'totp', reason: 'lost phone, identity checked in branch' } }),
    );
  });
});

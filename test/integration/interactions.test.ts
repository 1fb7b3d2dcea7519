import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { Browser, hiddenField, onboardTpp, signInAtInteraction, pushAuthorization, type RegisteredTpp, useMoatWithTpp } from '../support/tpp-client.ts';

/*
 * The customer's pages: the documented form contract (every form carries its page's `csrf` field),
 * clear pages (never a 500 or a stack trace) for what a browser can get wrong, CSRF protection and
 * brute-force protection on sign-in.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

async function startAuthorization(browser: Browser, target: { h: Harness; tpp: RegisteredTpp } = { h, tpp }): Promise<{ uid: string; csrf: string }> {
  const { requestUri } = await pushAuthorization(target.tpp);
  const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: target.tpp.client.client_id, request_uri: requestUri })}`);
  return { uid: new URL(start.url, target.h.issuer).pathname.split('/')[2]!, csrf: hiddenField(await start.res.text(), 'csrf') };
}

async function withBrowser<T>(fn: (browser: Browser) => Promise<T>, target: { h: Harness; tpp: RegisteredTpp } = { h, tpp }): Promise<T> {
  const browser = new Browser(target.h, target.tpp.creds.serverCaPem);
  try {
    return await fn(browser);
  } finally {
    await browser.close();
  }
}

describe('the login page', () => {
  it('shows who is asking, the form fields of the contract, and the sandbox customers', () =>
    withBrowser(async (browser) => {
      const { uid } = await startAuthorization(browser);
      const res = await browser.request(`/interaction/${uid}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
      // Pages with personal data are never cached.
      expect(res.headers.get('cache-control')).toBe('no-store');
      const html = await res.text();
      expect(html).toContain('Test Fintech wants to connect to your account');
      expect(html).toContain(`action="/interaction/${uid}/login"`);
      expect(html).toMatch(/<label for="username">Username<\/label>\s*<input id="username" name="username"/);
      expect(html).toMatch(/<label for="password">Password<\/label>\s*<input id="password" name="password" type="password"/);
      expect(html).toContain('<code>alice</code>');
    }));

  it('answers wrong credentials with 401 and a message, without saying which part was wrong', () =>
    withBrowser(async (browser) => {
      const { uid, csrf } = await startAuthorization(browser);
      const res = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'alice', password: 'wrong', csrf } });
      expect(res.status).toBe(401);
      expect(await res.text()).toContain('The username or password is incorrect.');
      const unknown = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'mallory', password: 'x', csrf } });
      expect(unknown.status).toBe(401);
      expect(await unknown.text()).toContain('The username or password is incorrect.');
    }));

  it('escapes what it echoes back', () =>
    withBrowser(async (browser) => {
      const { uid, csrf } = await startAuthorization(browser);
      const res = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: '<script>alert(1)</script>', password: 'x', csrf } });
      const html = await res.text();
      expect(html).not.toContain('<script>alert(1)</script>');
      expect(html).toContain('&lt;script&gt;');
    }));
});

describe('the consent page', () => {
  async function consentPageOf(target: RegisteredTpp): Promise<string> {
    return withBrowser(
      async (browser) => {
        const { uid, csrf } = await startAuthorization(browser, { h, tpp: target });
        const login = await signInAtInteraction(browser, uid, csrf);
        return login.res.text();
      },
      { h, tpp: target },
    );
  }

  it('shows the logo the directory vouches for (software_logo_uri, RFC 7591 §2.3), never one the registration request sent', async () => {
    const vouched = await onboardTpp(h, { roles: ['AISP'], logoUri: 'https://directory.example/logos/test-fintech.png' });
    const unsigned = await onboardTpp(h, { roles: ['AISP'], registration: { logo_uri: 'https://attacker.example/your-bank.png' } });
    try {
      expect(vouched.client.logo_uri).toBe('https://directory.example/logos/test-fintech.png');
      expect(await consentPageOf(vouched)).toContain('<img class="tpp-logo" src="https://directory.example/logos/test-fintech.png"');
      // RFC 7591 §3.2.1: the server may replace a requested value; the response shows what was registered.
      expect(unsigned.client.logo_uri).toBeUndefined();
      const page = await consentPageOf(unsigned);
      expect(page).toContain('Test Fintech is asking for access');
      expect(page).not.toContain('attacker.example');
    } finally {
      await vouched.close();
      await unsigned.close();
    }
  });

  it("shows who asks, what in plain words, the customer's accounts to choose from, and the form of the contract", () =>
    withBrowser(async (browser) => {
      const { requestUri } = await pushAuthorization(tpp, {
        extraParams: {
          authorization_details: JSON.stringify([
            {
              type: 'account_information',
              permissions: ['ReadBalances', 'ReadStatementsDetail'],
              expirationDateTime: '2031-03-01T00:00:00Z',
            },
          ]),
        },
      });
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
      const login = await signInAtInteraction(browser, uid, hiddenField(await start.res.text(), 'csrf'));
      const html = await login.res.text();
      expect(login.res.headers.get('cache-control')).toBe('no-store');
      expect(html).toContain('Test Fintech is asking for access');
      expect(html).toContain('Your account details');
      expect(html).toContain('Your statements');
      expect(html).not.toContain('ReadBalances');
      expect(html).toContain('Until <strong>1 March 2031</strong>');
      expect(html).toContain('Everyday current account');
      expect(html).toContain('••••5678');
      expect(html).not.toContain('40001712345678');
      expect(html).toMatch(/<input type="checkbox" name="accounts" id="account-0" value="acc-alice-current"/);
      expect(html).toMatch(/<label for="account-0">/);
      expect(html).toContain('name="decision" value="approve"');
      expect(html).toContain('name="decision" value="deny"');
    }));

  it('shows the exact amount, payee and reference of a payment, with one account to choose', () =>
    withBrowser(async (browser) => {
      const { requestUri } = await pushAuthorization(tpp, {
        scope: 'openid payments',
        extraParams: {
          authorization_details: JSON.stringify([
            {
              type: 'payment_initiation',
              instructedAmount: { amount: '1234.5', currency: 'GBP' },
              creditorName: 'Acme & Sons',
              creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223344556677' },
              remittanceInformation: { reference: 'INV 7' },
            },
          ]),
        },
      });
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
      const login = await signInAtInteraction(browser, uid, hiddenField(await start.res.text(), 'csrf'));
      const html = await login.res.text();
      expect(html).toContain('£1,234.50');
      expect(html).toContain('Acme &amp; Sons');
      expect(html).toContain('sort code 11-22-33, account 44556677');
      expect(html).toContain('INV 7');
      expect(html).toMatch(/<input type="radio" name="accounts"/);
      // Only accounts in the payment's currency.
      expect(html).not.toContain('acc-alice-euro');
    }));
});

describe('CSRF protection on every form', () => {
  it("says a refused form in the authorization's ui_locales, not the browser's language (OIDC Core §3.1.2.1; issue 18 point 8)", () =>
    withBrowser(async (browser) => {
      const { requestUri } = await pushAuthorization(tpp, { extraParams: { ui_locales: 'pt-BR' } });
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
      const refused = await browser.request(`/interaction/${uid}/login`, {
        method: 'POST',
        form: { username: 'alice', password: 'alice-sandbox' },
        headers: { 'accept-language': 'en-GB' },
      });
      expect(refused.status).toBe(400);
      const page = await refused.text();
      expect(page).toContain('<html lang="pt-BR">');
      expect(page).toContain('Esta página expirou');
    }));

  it('refuses a login form without its csrf field, with a foreign token, or from another origin', () =>
    withBrowser(async (browser) => {
      const { uid, csrf } = await startAuthorization(browser);
      const missing = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'alice', password: 'alice-sandbox' } });
      expect(missing.status).toBe(400);
      // In the customer's words; the technical reason is only in the log.
      const missingPage = await missing.text();
      expect(missingPage).toContain('This page has expired');
      expect(missingPage).not.toContain('invalid_request');
      // A token rendered for another browser (another CSRF cookie) is worthless here.
      const otherToken = await withBrowser(async (other) => (await startAuthorization(other)).csrf);
      const foreign = await browser.request(`/interaction/${uid}/login`, {
        method: 'POST',
        form: { username: 'alice', password: 'alice-sandbox', csrf: otherToken },
      });
      expect(foreign.status).toBe(400);
      const crossSite = await browser.request(`/interaction/${uid}/login`, {
        method: 'POST',
        form: { username: 'alice', password: 'alice-sandbox', csrf },
        headers: { origin: 'https://evil.example' },
      });
      expect(crossSite.status).toBe(400);
      expect(await crossSite.text()).toContain('sent from another tab or site');
      const ok = await signInAtInteraction(browser, uid, csrf, undefined, { headers: { origin: h.issuer } });
      expect(ok.res.status).toBe(200);
    }));

  it("refuses a consent decision without the consent page's token", () =>
    withBrowser(async (browser) => {
      const { uid, csrf } = await startAuthorization(browser);
      const login = await signInAtInteraction(browser, uid, csrf);
      const consentUid = new URL(login.url, h.issuer).pathname.split('/')[2]!;
      // The login page's token names the login interaction, not this one.
      const res = await browser.request(`/interaction/${consentUid}/consent`, { method: 'POST', form: { decision: 'approve', csrf } });
      expect(res.status).toBe(400);
    }));
});

describe('what a browser can get wrong', () => {
  it('gets a 400 page, not a 500, for an interaction that does not exist or lacks its cookie', () =>
    withBrowser(async (browser) => {
      const res = await browser.request('/interaction/does-not-exist');
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      // Issue 18 defect 3: plain words, a way back, the bank's contact and a support reference — no OAuth.
      const page = await res.text();
      expect(page).toContain('<h1>Your session with the bank timed out</h1>');
      expect(page).toContain('you have 10 minutes to finish');
      expect(page).toContain('Go back to the app you came from');
      expect(page).toContain('contact Moat Bank on the number on the back of your card');
      expect(page).toMatch(/Support reference: <code>[0-9a-f-]{36}<\/code>/);
      expect(page).not.toMatch(/invalid_request|cookie|interaction session/);
      const post = await browser.request('/interaction/does-not-exist/login', { method: 'POST', form: { username: 'alice', password: 'alice-sandbox' } });
      expect(post.status).toBe(400);
    }));

  it('gets a 400 page for a consent decision outside the contract', () =>
    withBrowser(async (browser) => {
      const { uid, csrf } = await startAuthorization(browser);
      const login = await signInAtInteraction(browser, uid, csrf);
      const consentUid = new URL(login.url, h.issuer).pathname.split('/')[2]!;
      const consentCsrf = hiddenField(await login.res.text(), 'csrf');
      const res = await browser.request(`/interaction/${consentUid}/consent`, { method: 'POST', form: { decision: 'maybe', csrf: consentCsrf } });
      expect(res.status).toBe(400);
      const page = await res.text();
      expect(page).toContain('We could not start this request');
      // The TPP is known from the interaction: the page names it.
      expect(page).toContain('Go back to Test Fintech');
      expect(page).not.toContain('decision must be approve or deny');
    }));

  it('gets a 400 page for a form that is not form-encoded', () =>
    withBrowser(async (browser) => {
      const { uid } = await startAuthorization(browser);
      const res = await browser.request(`/interaction/${uid}/login`, { method: 'POST' });
      expect(res.status).toBe(400);
      const page = await res.text();
      expect(page).toContain('We could not start this request');
      expect(page).not.toContain('application/x-www-form-urlencoded');
    }));
});

describe('brute-force protection on sign-in', () => {
  let locked: Harness;
  let lockedTpp: RegisteredTpp;
  beforeAll(async () => {
    locked = await startMoat({
      config: {
        customers: { loginThrottle: { perAccount: { failures: 3, lockSeconds: 600 }, perAddress: { failures: 8, windowSeconds: 600, lockSeconds: 600 } } },
      },
    });
    lockedTpp = await onboardTpp(locked);
  });
  afterAll(async () => {
    await lockedTpp.close();
    await locked.close();
  });

  it('locks a username after consecutive failures, even for the right password, and says so with 429 and Retry-After', () =>
    withBrowser(
      async (browser) => {
        const { uid, csrf } = await startAuthorization(browser, { h: locked, tpp: lockedTpp });
        const attempt = (password: string) => browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'bob', password, csrf } });
        expect((await attempt('wrong-1')).status).toBe(401);
        expect((await attempt('wrong-2')).status).toBe(401);
        const third = await attempt('wrong-3');
        expect(third.status).toBe(429);
        const right = await attempt('bob-sandbox');
        expect(right.status).toBe(429);
        expect(Number(right.headers.get('retry-after'))).toBeGreaterThan(500);
        expect(await right.text()).toContain('Too many incorrect attempts for this username. For your security, sign-in is paused. Try again in 10 minutes');
        // Another customer is not locked out by bob's lock.
        const alice = await signInAtInteraction(browser, uid, csrf);
        expect(alice.res.status).toBe(200);
      },
      { h: locked, tpp: lockedTpp },
    ));

  it('locks an address that tries many usernames (credential stuffing)', () =>
    withBrowser(
      async (browser) => {
        const { uid, csrf } = await startAuthorization(browser, { h: locked, tpp: lockedTpp });
        const statuses: number[] = [];
        for (let i = 0; i < 6; i += 1) {
          statuses.push(
            (await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: `user-${i}`, password: 'guess', csrf } })).status,
          );
        }
        // 3 failures in the test before + 5 here reach the address limit of 8.
        expect(statuses.slice(0, 4)).toEqual([401, 401, 401, 401]);
        expect(statuses.at(-1)).toBe(429);
        const res = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username: 'alice', password: 'alice-sandbox', csrf } });
        expect(res.status).toBe(429);
        expect(await res.text()).toContain('Too many sign-in attempts from your network.');
      },
      { h: locked, tpp: lockedTpp },
    ));
});

describe('sign-in attempts sent all at once (issue 14)', () => {
  // Every password evaluated logs exactly one of these; a refused attempt logs login.locked instead.
  const evaluations = (target: Harness) => target.logs.filter((l) => l.event === 'login.failed' || l.event === 'login.succeeded').length;
  let burst: Harness;
  beforeAll(async () => {
    burst = await startMoat({
      config: {
        customers: { loginThrottle: { perAccount: { failures: 5, lockSeconds: 600 }, perAddress: { failures: 10_000, windowSeconds: 600, lockSeconds: 600 } } },
      },
    });
  });
  afterAll(async () => {
    await burst?.close();
  });

  /** 50 sign-ins to the consent dashboard, all sent before any is answered. */
  async function signInAtOnce(browser: Browser, username: string, passwords: string[]): Promise<Response[]> {
    const csrf = hiddenField(await (await browser.request('/account/login')).text(), 'csrf');
    return Promise.all(passwords.map((password) => browser.request('/account/login', { method: 'POST', form: { username, password, csrf } })));
  }

  it('evaluates no more than the configured failures for 50 wrong passwords, then refuses the right one', async () => {
    const browser = new Browser(burst, readFileSync(join(burst.dataDir, 'sandbox', 'server-ca.pem'), 'utf8'));
    try {
      const before = evaluations(burst);
      const responses = await signInAtOnce(
        browser,
        'alice',
        Array.from({ length: 50 }, (_, i) => `wrong-${i}`),
      );
      expect(evaluations(burst) - before).toBe(5);
      expect(responses.filter((r) => r.status === 401)).toHaveLength(4);
      expect(responses.filter((r) => r.status === 429)).toHaveLength(46);
      // The lock holds against the right password, which is not even evaluated.
      const csrf = hiddenField(await (await browser.request('/account/login')).text(), 'csrf');
      const right = await browser.request('/account/login', { method: 'POST', form: { username: 'alice', password: 'alice-sandbox', csrf } });
      expect(right.status).toBe(429);
      expect(evaluations(burst) - before).toBe(5);
    } finally {
      await browser.close();
    }
  });

  it('evaluates no more than the configured failures when the right password is among 50 sent at once', async () => {
    const browser = new Browser(burst, readFileSync(join(burst.dataDir, 'sandbox', 'server-ca.pem'), 'utf8'));
    try {
      const before = evaluations(burst);
      const refusedBefore = burst.logs.filter((l) => l.event === 'login.locked').length;
      const passwords = Array.from({ length: 50 }, (_, i) => (i === 20 ? 'bob-sandbox' : `wrong-${i}`));
      const responses = await signInAtOnce(browser, 'bob', passwords);
      const evaluated = evaluations(burst) - before;
      expect(evaluated).toBeLessThanOrEqual(5);
      const signedIn = responses.filter((r) => r.status === 302).length;
      expect(signedIn).toBeLessThanOrEqual(1);
      // Every attempt not evaluated was refused before its password was looked at.
      expect(burst.logs.filter((l) => l.event === 'login.locked').length - refusedBefore).toBe(50 - evaluated);
      expect(responses.filter((r) => r.status === 401 || r.status === 429)).toHaveLength(50 - signedIn);
      if (signedIn === 0) {
        // The right password came too late: five failures locked bob, and the lock holds against it.
        const csrf = hiddenField(await (await browser.request('/account/login')).text(), 'csrf');
        expect((await browser.request('/account/login', { method: 'POST', form: { username: 'bob', password: 'bob-sandbox', csrf } })).status).toBe(429);
      }
    } finally {
      await browser.close();
    }
  });
});

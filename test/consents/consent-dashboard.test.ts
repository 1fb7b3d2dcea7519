import type { Harness } from '../support/moat-harness.ts';
import { authorize, Browser, hiddenField, useMoatWithTpp, type RegisteredTpp, signInToDashboard } from '../support/tpp-client.ts';
import { introspect, redeem, refresh } from '../support/consents.ts';

/*
 * The customer's consent dashboard: sign in, see every consent by TPP, stop one with one
 * confirmation — and its tokens stop working at once.
 */

let h: Harness;
let tpp: RegisteredTpp;
// A bank in São Paulo (UTC−3): the dashboard says its dates and times in the bank's zone (issue 18 point 6).
const BANK_ZONE = 'America/Sao_Paulo';
useMoatWithTpp((started) => ({ h, tpp } = started), { config: { branding: { timeZone: BANK_ZONE } } });

async function signedIn(username = 'alice', password = `${username}-sandbox`): Promise<Browser> {
  const browser = new Browser(h, tpp.creds.serverCaPem);
  await signInToDashboard(browser, username, password);
  return browser;
}

const accountInformation = JSON.stringify([
  { type: 'account_information', permissions: ['ReadBalances', 'ReadStatementsBasic'], expirationDateTime: '2032-02-29T00:00:00Z' },
]);

describe('the consent dashboard', () => {
  let tokens: Record<string, any>;
  beforeAll(async () => {
    tokens = (await redeem(tpp, await authorize(h, tpp, { extraParams: { authorization_details: accountInformation }, accounts: ['acc-alice-savings'] }))).body;
  });

  it('sends a visitor without a session to sign in', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const res = await browser.request('/account/consents');
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/account/login');
    } finally {
      await browser.close();
    }
  });

  it('keeps its session in a __Host- cookie: Secure, HttpOnly, SameSite=Strict', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const page = await browser.request('/account/login');
      const res = await browser.request('/account/login', {
        method: 'POST',
        form: { username: 'alice', password: 'alice-sandbox', csrf: hiddenField(await page.text(), 'csrf') },
      });
      const cookie = res.headers.getSetCookie().find((c) => c.startsWith('__Host-moat-customer='))!;
      expect(cookie).toMatch(/; path=\//);
      expect(cookie).toMatch(/; secure/);
      expect(cookie).toMatch(/; httponly/);
      expect(cookie).toMatch(/; samesite=strict/);
    } finally {
      await browser.close();
    }
  });

  it('lists the consent under the TPP with what it shares, the masked account and the dates', async () => {
    const browser = await signedIn();
    try {
      const res = await browser.request('/account/consents');
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const html = await res.text();
      expect(html).toContain('<h3>Test Fintech');
      expect(html).toContain('Your account details');
      expect(html).toContain('Your statements');
      // By nickname, as on the consent screen (issue 18 point 6), and masked.
      expect(html).toContain('Rainy day saver (••••4321)');
      expect(html).not.toContain('40001787654321');
      // 2032-02-29T00:00:00Z is 21:00 on the 28th in the bank's zone: the consent ends on the bank's 28 February.
      expect(html).toContain('28 February 2032');
      expect(html).not.toContain('29 February 2032');
      expect(html).toContain(`href="/account/consents/${tokens.consent_id}/revoke"`);
    } finally {
      await browser.close();
    }
  });

  it('says when the TPP last used the consent, and that a consent nobody used yet was not used (issue 18 point 6)', async () => {
    // A consent authorised whose code was never redeemed: no token, no use.
    await authorize(h, tpp, { extraParams: { authorization_details: accountInformation }, accounts: ['acc-alice-current'] });
    // The redeemed one is used again: its token introspected (the write is off the request's path, so look until it shows).
    expect((await introspect(tpp, tokens.access_token)).active).toBe(true);
    const browser = await signedIn();
    try {
      // The moment recorded, said in the bank's zone and named (not UTC), in the page's locale.
      const inZone = (locale: string, at: Date) =>
        new Intl.DateTimeFormat(locale, {
          day: 'numeric',
          month: 'long',
          year: 'numeric',
          hour: '2-digit',
          minute: '2-digit',
          timeZone: BANK_ZONE,
          timeZoneName: 'short',
        }).format(at);
      // Until the page shows the use the store holds now: the redemption's use may show first, and the
      // introspection's lands a moment later (off the request's path), in the next minute when the two
      // straddle one. The expected moment is the one recorded (what the dashboard lists), never the
      // clock's: a use recorded at hh:mm:59 is shown as hh:mm after the minute has turned.
      const { customerId } = await h.moat.consents.getForClient(tokens.consent_id, tpp.client.client_id);
      let html = '';
      let lastUsedAt: Date | undefined;
      for (let tries = 0; tries < 40; tries += 1) {
        lastUsedAt = (await h.moat.consents.listForCustomer(customerId!)).find((c) => c.id === tokens.consent_id)?.lastUsedAt;
        html = await (await browser.request('/account/consents')).text();
        if (lastUsedAt !== undefined && html.includes(`<dd class="last-used">${inZone('en-GB', lastUsedAt)}</dd>`)) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      if (lastUsedAt === undefined) throw new Error('no use of the consent was recorded');
      // The use recorded is this test's (the redemption or the introspection above), not a stale one.
      expect(Date.now() - lastUsedAt.getTime()).toBeLessThan(5 * 60_000);
      expect(inZone('en-GB', lastUsedAt)).toMatch(/ at \d{2}:\d{2} GMT-3$/);
      expect(html).toContain(`Last used by Test Fintech</dt><dd class="last-used">${inZone('en-GB', lastUsedAt)}</dd>`);
      expect(html).toContain('Last used by Test Fintech</dt><dd class="last-used">Not used yet</dd>');
      expect(html).not.toContain(' UTC<');
      // In Brazilian Portuguese, the zone by its local name.
      const pt = await (await browser.request('/account/consents', { headers: { 'accept-language': 'pt-BR' } })).text();
      expect(inZone('pt-BR', lastUsedAt)).toMatch(/ às \d{2}:\d{2} BRT$/);
      expect(pt).toContain(`<dd class="last-used">${inZone('pt-BR', lastUsedAt)}</dd>`);
    } finally {
      await browser.close();
    }
  });

  it("shows another customer none of alice's consents, and cannot revoke them", async () => {
    const bob = await signedIn('bob');
    try {
      const html = await (await bob.request('/account/consents')).text();
      expect(html).not.toContain(tokens.consent_id);
      const res = await bob.request(`/account/consents/${tokens.consent_id}/revoke`);
      expect(res.status).toBe(404);
      expect(await res.text()).toContain('There is no such consent in your account.');
    } finally {
      await bob.close();
    }
  });

  it("refuses a revocation without the confirmation page's CSRF token", async () => {
    const browser = await signedIn();
    try {
      const res = await browser.request(`/account/consents/${tokens.consent_id}/revoke`, { method: 'POST', form: {} });
      expect(res.status).toBe(400);
      expect((await introspect(tpp, tokens.access_token as string)).active).toBe(true);
    } finally {
      await browser.close();
    }
  });

  it('stops a consent after one confirmation: its tokens die at once and it moves to history', async () => {
    const browser = await signedIn();
    try {
      const confirm = await browser.request(`/account/consents/${tokens.consent_id}/revoke`);
      const page = await confirm.text();
      expect(page).toContain('Stop sharing with Test Fintech?');
      // What stops, from where, and what happens to what the TPP already holds (issue 18 point 6).
      expect(page).toContain('Your account details');
      expect(page).toContain('Rainy day saver (••••4321)');
      expect(page).toContain('Stopping does not delete what Test Fintech has already collected.');
      const res = await browser.request(`/account/consents/${tokens.consent_id}/revoke`, { method: 'POST', form: { csrf: hiddenField(page, 'csrf') } });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe(`/account/consents?revoked=${tokens.consent_id}`);
      expect((await introspect(tpp, tokens.access_token as string)).active).toBe(false);
      expect((await refresh(tpp, tokens.refresh_token as string)).body.error).toBe('invalid_grant');
      const api = await tpp.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(api.status).toBe(401);
      const html = await (await browser.request(res.headers.get('location')!)).text();
      expect(html).toContain('Done: Test Fintech can no longer use this consent.');
      expect(html).toMatch(/<h2 id="history-heading">History<\/h2>[\s\S]*Stopped/);
      expect(html).toMatch(/<dt>Stopped on<\/dt>/);
      const events = await h.moat.consents.events(tokens.consent_id as string);
      expect(events.at(-1)).toEqual(expect.objectContaining({ toStatus: 'Revoked', actor: 'customer', actorId: 'cust-alice' }));
    } finally {
      await browser.close();
    }
  });

  it('signs out: the session is gone on the server, not only in the browser', async () => {
    const browser = await signedIn();
    try {
      const page = await (await browser.request('/account/consents')).text();
      const cookie = (browser as unknown as { cookies: Map<string, { value: string }> }).cookies.get('__Host-moat-customer')!.value;
      const out = await browser.request('/account/logout', { method: 'POST', form: { csrf: hiddenField(page, 'csrf') } });
      expect(out.status).toBe(302);
      // Replaying the old session id after sign-out gets the sign-in page.
      const replay = new Browser(h, tpp.creds.serverCaPem);
      try {
        const res = await replay.request('/account/consents', { headers: { cookie: `__Host-moat-customer=${cookie}` } });
        expect(res.status).toBe(302);
        expect(res.headers.get('location')).toBe('/account/login');
      } finally {
        await replay.close();
      }
    } finally {
      await browser.close();
    }
  });

  it("never writes a password, a customer's name, an account number or a token into a log line", async () => {
    const logged = JSON.stringify(h.logs);
    for (const secret of [
      'alice-sandbox',
      'bob-sandbox',
      'Alice Example',
      'Bob Example',
      '40001787654321',
      '40001722334455',
      tokens.access_token,
      tokens.refresh_token,
    ]) {
      expect(logged).not.toContain(secret);
    }
    // The log does record what happened, by consent and client id.
    expect(h.logs.some((l) => l.event === 'consent.revoked' && l.consentId === tokens.consent_id)).toBe(true);
  });
});

import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminRequest } from '../support/admin-api.ts';
import { adminToken } from '../support/admin-metrics.ts';
import { chromiumAvailable, launchChromium } from '../support/chromium.ts';
import type { Harness } from '../support/moat-harness.ts';
import { checkAccessible } from '../support/page-checks.ts';
import { useMoatWithTpp } from '../support/tpp-client.ts';
import { addVirtualAuthenticator, type AuthenticatorOptions, type VirtualAuthenticator } from '../support/virtual-authenticator.ts';

/*
 * Passkeys in a real browser (headless Chromium) with the DevTools protocol's virtual authenticator:
 * enrolled from the customer dashboard, refused without user verification, removed by the customer
 * or reset by an operator. The page runs one script, Moat's, allowed by a per-response CSP nonce and
 * pinned by its SRI hash.
 */

// Runs in the browser (Moat's TypeScript has no DOM library).
declare const document: any;

const describeInBrowser = chromiumAvailable() ? describe : describe.skip;

let h: Harness;
useMoatWithTpp((started) => ({ h } = started));

let chromium: Browser;
beforeAll(async () => {
  if (chromiumAvailable()) chromium = await launchChromium();
});
afterAll(async () => {
  await chromium?.close();
});

interface Device extends VirtualAuthenticator { context: BrowserContext; page: Page }

async function openDevice(options: AuthenticatorOptions = {}): Promise<Device> {
  const context = await chromium.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  return addVirtualAuthenticator(context, page, options);
}

async function signInToDashboard(page: Page, username: string, password: string): Promise<void> {
  await page.goto(`${h.issuer}/account/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Password').press('Enter');
  await page.getByRole('heading', { name: 'Connected apps' }).waitFor();
}

async function passkeysOf(customerId: string): Promise<{ id: string }[]> {
  const { rows } = await h.moat.storage.sql.query<{ id: string }>('SELECT id FROM passkey_credential WHERE customer_id = $1', [customerId]);
  return rows;
}

describeInBrowser('passkeys in a real browser', () => {
  it('enrols a passkey from the dashboard with the keyboard alone, under a CSP that allows exactly Moat\'s script', async () => {
    const device = await openDevice();
    const { page } = device;
    try {
      await signInToDashboard(page, 'bob', 'bob-sandbox');
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith('/account/passkeys')),
        page.getByRole('link', { name: 'Your passkeys' }).click(),
      ]);
      await page.getByRole('heading', { name: 'Your passkeys' }).waitFor();

      // CSP Level 3: one nonce per response, on the one script tag, which also carries its SRI hash.
      const csp = response.headers()['content-security-policy']!;
      const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
      expect(nonce).toBeDefined();
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|script-src[^;]*'self'/);
      const scripts = await page.evaluate(() => [...document.querySelectorAll('script')].map((s: any) => ({ src: s.getAttribute('src'), integrity: s.getAttribute('integrity'), nonce: s.nonce, inline: s.textContent })));
      expect(scripts).toEqual([{ src: '/assets/passkey.js', integrity: expect.stringMatching(/^sha384-/), nonce, inline: '' }]);
      const again = await page.reload();
      expect(again!.headers()['content-security-policy']).not.toContain(nonce);
      await checkAccessible(page);

      // Keyboard only: the name field, then the button.
      await page.getByLabel('Name it, so you can tell it apart later').focus();
      await page.keyboard.press('Control+A');
      await page.keyboard.type('Work laptop');
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Add a passkey');
      await page.keyboard.press('Enter');
      await page.getByRole('status').filter({ hasText: 'Passkey added.' }).waitFor();
      await expect(page.getByRole('heading', { name: 'Work laptop' }).isVisible()).resolves.toBe(true);
      expect(await passkeysOf('cust-bob')).toHaveLength(1);
      expect(await device.credentialCount()).toBe(1);
      await checkAccessible(page);

      // Removal: one button per passkey, named after it.
      await page.getByRole('button', { name: 'Remove Work laptop' }).click();
      await page.getByRole('status').filter({ hasText: 'Passkey removed.' }).waitFor();
      expect(await passkeysOf('cust-bob')).toHaveLength(0);
      await h.moat.audit.drain();
      const audited = await h.moat.audit.query({ customerId: 'cust-bob' });
      expect(audited.map((e) => e.type)).toEqual(expect.arrayContaining(['factor.enrolled', 'factor.removed']));
    } finally {
      await device.context.close();
    }
  });

  it('refuses an authenticator that cannot verify its user, with a message on the page, and enrols nothing', async () => {
    const device = await openDevice({ hasUserVerification: false, isUserVerified: false });
    const { page } = device;
    try {
      await signInToDashboard(page, 'alice', 'alice-sandbox');
      await page.goto(`${h.issuer}/account/passkeys`);
      await page.getByRole('button', { name: 'Add a passkey' }).click();
      await page.getByText('your device could not verify you').waitFor();
      expect(await device.credentialCount()).toBe(0);
      expect(await passkeysOf('cust-alice')).toHaveLength(0);
    } finally {
      await device.context.close();
    }
  });

  it('answers a malformed or replayed registration with the page and its reason, never a 500', async () => {
    const device = await openDevice();
    const { page } = device;
    try {
      await signInToDashboard(page, 'alice', 'alice-sandbox');
      await page.goto(`${h.issuer}/account/passkeys`);
      // The form as a script-less client would post it: no response, then one that is not JSON.
      for (const value of ['', '{not json']) {
        await page.evaluate((v: string) => {
          const form = document.querySelector('form[data-passkey]');
          form.elements.namedItem('response').value = v;
          form.submit();
        }, value);
        await page.getByRole('alert').filter({ hasText: 'The passkey response could not be read.' }).waitFor();
      }
      // A real response, captured, then posted twice: the second finds its challenge spent.
      await page.route('**/account/passkeys', async (route) => {
        if (route.request().method() === 'POST') captured = route.request().postData() ?? '';
        await route.continue();
      });
      let captured = '';
      await page.getByRole('button', { name: 'Add a passkey' }).click();
      await page.getByRole('status').filter({ hasText: 'Passkey added.' }).waitFor();
      const replay = await page.request.post(`${h.issuer}/account/passkeys`, { headers: { 'content-type': 'application/x-www-form-urlencoded', origin: h.issuer }, data: captured });
      expect(replay.status()).toBe(400);
      expect(await replay.text()).toContain('This passkey response was used already.');
      expect(await passkeysOf('cust-alice')).toHaveLength(1);
    } finally {
      await device.context.close();
    }
  });
});

describe('operator reset of a customer\'s passkeys', () => {
  it('removes every passkey of the customer and audits who did it and why', async () => {
    await h.moat.storage.sql.query(
      `INSERT INTO passkey_credential (id, customer_id, public_key, device_type, backed_up, aaguid, name)
       VALUES ('reset-1', 'cust-reset', '\\x00', 'singleDevice', false, '00000000-0000-0000-0000-000000000000', 'Phone'),
              ('reset-2', 'cust-reset', '\\x00', 'multiDevice', true, '00000000-0000-0000-0000-000000000000', 'Laptop')`,
    );
    const port = h.moat.adminPort!;
    expect((await adminRequest(port, 'POST', '/customers/cust-reset/factors/passkeys/reset', { body: { reason: 'lost phone' } })).status).toBe(401);
    const missingReason = await adminRequest(port, 'POST', '/customers/cust-reset/factors/passkeys/reset', { token: adminToken(h), body: {} });
    expect(missingReason).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await passkeysOf('cust-reset')).toHaveLength(2);
    const reset = await adminRequest(port, 'POST', '/customers/cust-reset/factors/passkeys/reset', { token: adminToken(h), body: { reason: 'lost phone, identity checked in branch' } });
    expect(reset).toEqual({ status: 200, body: { customerId: 'cust-reset', factor: 'passkey', removed: 2 } });
    expect(await passkeysOf('cust-reset')).toHaveLength(0);
    await h.moat.audit.drain();
    const [event] = await h.moat.audit.query({ customerId: 'cust-reset', type: 'factor.reset' });
    expect(event).toMatchObject({ actor: 'operator', actorId: 'admin-token', detail: { factor: 'passkey', removed: 2, reason: 'lost phone, identity checked in branch' } });
  });
});

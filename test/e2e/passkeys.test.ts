import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import type { Page } from 'playwright-core';
import { hashPassword } from '../../src/customers/password-hash.ts';
import { paymentLinkHash, paymentLinkOf } from '../../src/sca/dynamic-linking.ts';
import { adminRequest } from '../support/admin-api.ts';
import { adminToken } from '../support/admin-metrics.ts';
import { chromiumAvailable, useChromium, useTabs, VIEWPORTS, catchTppRedirect, type TabOptions } from '../support/chromium.ts';
import type { Harness } from '../support/moat-harness.ts';
import { checkAccessible, checkPageInLanguage } from '../support/page-checks.ts';
import { clientCredentialsToken, consentApi, domesticPaymentBody, intentClaims, redeem } from '../support/consents.ts';
import { pushAuthorization, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';
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
let tpp: RegisteredTpp;
// Before the Moat: Jest runs afterAll hooks in the order they were declared, and the browser's
// connections must be gone before the Moat closes (useTabs).
const chromium = useChromium();
const tabs = useTabs(chromium);

useMoatWithTpp((started) => ({ h, tpp } = started));

interface Device extends VirtualAuthenticator {
  /** Gives the device's tab back, its authenticator removed. */
  close(): Promise<void>;
}

/** A cleared tab with a new authenticator of its own. */
async function openDevice(options: AuthenticatorOptions & TabOptions = {}): Promise<Device> {
  const { hasUserVerification, isUserVerified, backupEligible, ...tabOptions } = options;
  const tab = await tabs(tabOptions);
  const authenticator = await addVirtualAuthenticator(tab.context, tab.page, {
    ...(hasUserVerification === undefined ? {} : { hasUserVerification }),
    ...(isUserVerified === undefined ? {} : { isUserVerified }),
    ...(backupEligible === undefined ? {} : { backupEligible }),
  });
  return { ...authenticator, close: tab.close };
}

/** Password sign-in to /account, for a customer without an authenticator app. */
async function signInToDashboard(page: Page, username: string, password: string): Promise<void> {
  await page.goto(`${h.issuer}/account/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Password').press('Enter');
  // "Active" and not "Connected apps": the sign-in page has that heading too, so waiting on it
  // raced the sign-in and let the next goto be aborted by the form's own navigation.
  await page.getByRole('heading', { name: 'Active', exact: true }).waitFor();
}

/** A customer with a password, one GBP account and no second factor yet. */
async function createCustomer(name: string): Promise<{ id: string; username: string; password: string }> {
  const customer = { id: `cust-${name}`, username: name, password: `${name}-password-7Q` };
  await h.moat.storage.sql.query('INSERT INTO customer (id, username, password_hash, name) VALUES ($1, $2, $3, $4)', [
    customer.id,
    customer.username,
    await hashPassword(customer.password),
    `Test ${name}`,
  ]);
  await h.moat.storage.sql.query(
    `INSERT INTO customer_account (id, customer_id, nickname, account_type, currency, scheme_name, identification)
     VALUES ($1, $2, 'Everyday', 'Personal', 'GBP', 'UK.OBIE.SortCodeAccountNumber', $3)`,
    [`acc-${name}`, customer.id, `4000${String(Math.floor(Math.random() * 1e10)).padStart(10, '0')}`],
  );
  return customer;
}

/** The customer enrols a passkey on `device` from the dashboard. */
async function enrol(device: Device, customer: { username: string; password: string }): Promise<void> {
  await signInToDashboard(device.page, customer.username, customer.password);
  await device.page.goto(`${h.issuer}/account/passkeys`);
  await device.page.getByRole('button', { name: 'Add a passkey' }).click();
  await device.page.getByRole('status').filter({ hasText: 'Passkey added.' }).waitFor();
}

/** A UK OB domestic payment consent lodged by the TPP. */
async function lodgePayment(amount: string): Promise<string> {
  const token = await clientCredentialsToken(tpp, 'payments');
  const created = await consentApi(tpp, 'POST', '/pisp/domestic-payment-consents', {
    token,
    body: domesticPaymentBody({ InstructedAmount: { Amount: amount, Currency: 'GBP' } }),
    headers: { 'x-idempotency-key': randomUUID() },
  });
  expect(created.status).toBe(201);
  return created.body.Data.ConsentId as string;
}

/** Starts the authorization in the device's browser; resolves with where Moat sends the browser back to the TPP. */
async function startAuthorization(device: Device, consentId: string): Promise<{ callback: Promise<URL>; codeVerifier: string }> {
  const { callback } = await catchTppRedirect(device.page, tpp.redirectUri);
  const { requestUri, codeVerifier } = await pushAuthorization(tpp, { scope: 'openid payments', extraParams: { claims: intentClaims(consentId) } });
  await device.page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
  return { callback, codeVerifier };
}

async function changeAmount(consentId: string, amount: string): Promise<void> {
  await h.moat.storage.sql.query(`UPDATE consent SET requested = jsonb_set(requested, '{instructedAmount,amount}', to_jsonb($2::text)) WHERE id = $1`, [
    consentId,
    amount,
  ]);
}

async function passkeysOf(customerId: string): Promise<{ id: string }[]> {
  const { rows } = await h.moat.storage.sql.query<{ id: string }>('SELECT id FROM passkey_credential WHERE customer_id = $1', [customerId]);
  return rows;
}

describeInBrowser('passkeys on the customer dashboard', () => {
  it("enrols a passkey with the keyboard alone, under a CSP that allows exactly Moat's script; removing it needs SCA, which the passkey gives", async () => {
    const customer = await createCustomer('pk-dash');
    const device = await openDevice();
    const { page } = device;
    try {
      await signInToDashboard(page, customer.username, customer.password);
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
      const scripts = await page.evaluate(() =>
        [...document.querySelectorAll('script')].map((s: any) => ({
          src: s.getAttribute('src'),
          integrity: s.getAttribute('integrity'),
          nonce: s.nonce,
          inline: s.textContent,
        })),
      );
      expect(scripts).toEqual([{ src: '/assets/passkey.js', integrity: expect.stringMatching(/^sha384-/), nonce, inline: '' }]);
      await expect(page.getByText('Adding a passkey needs JavaScript').isVisible()).resolves.toBe(false);
      const again = await page.reload();
      expect(again!.headers()['content-security-policy']).not.toContain(nonce);
      await checkAccessible(page);

      // Keyboard only: the name field, then the button. No factor yet: the password is enough to add the first.
      await page.getByLabel('Name it, so you can tell it apart later').focus();
      await page.keyboard.press('Control+A');
      await page.keyboard.type('Work laptop');
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Add a passkey');
      await page.keyboard.press('Enter');
      await page.getByRole('status').filter({ hasText: 'Passkey added.' }).waitFor();
      await expect(page.getByRole('heading', { name: 'Work laptop' }).isVisible()).resolves.toBe(true);
      expect(await passkeysOf(customer.id)).toHaveLength(1);
      expect(await device.credentialCount()).toBe(1);
      await checkAccessible(page);

      // Now the customer has a factor: a password-only session cannot remove it (issue 16 §4).
      await page.getByRole('button', { name: 'Remove Work laptop' }).click();
      await page.getByText('To add or remove a passkey, sign in with a passkey').waitFor();
      expect(await passkeysOf(customer.id)).toHaveLength(1);

      // Signed in again with the passkey alone: a strong session, which may.
      await device.context.clearCookies();
      await page.goto(`${h.issuer}/account/login`);
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await page.getByRole('heading', { name: 'Active', exact: true }).waitFor();
      await page.goto(`${h.issuer}/account/passkeys`);
      await page.getByRole('button', { name: 'Remove Work laptop' }).click();
      await page.getByRole('status').filter({ hasText: 'Passkey removed.' }).waitFor();
      expect(await passkeysOf(customer.id)).toHaveLength(0);
      await h.moat.audit.drain();
      const audited = await h.moat.audit.query({ customerId: customer.id });
      expect(audited.map((e) => e.type)).toEqual(expect.arrayContaining(['factor.enrolled', 'factor.removed']));
    } finally {
      await device.close();
    }
  });

  it('hides the passkey forms from a browser without JavaScript, where the password path still works', async () => {
    const customer = await createCustomer('pk-no-js');
    const tab = await tabs({ javaScriptEnabled: false });
    const { page } = tab;
    try {
      await page.goto(`${h.issuer}/account/login`);
      await expect(page.getByRole('button', { name: 'Sign in with a passkey' }).isVisible()).resolves.toBe(false);
      await signInToDashboard(page, customer.username, customer.password);
      await page.goto(`${h.issuer}/account/passkeys`);
      await expect(page.getByText('Adding a passkey needs JavaScript').isVisible()).resolves.toBe(true);
      await expect(page.getByRole('button', { name: 'Add a passkey' }).isVisible()).resolves.toBe(false);
      await checkAccessible(page);
    } finally {
      await tab.close();
    }
  });

  it('refuses an authenticator that cannot verify its user, with a message on the page, and enrols nothing', async () => {
    const customer = await createCustomer('pk-no-uv');
    const device = await openDevice({ hasUserVerification: false, isUserVerified: false });
    const { page } = device;
    try {
      await signInToDashboard(page, customer.username, customer.password);
      await page.goto(`${h.issuer}/account/passkeys`);
      await page.getByRole('button', { name: 'Add a passkey' }).click();
      await page.getByText('your device could not verify you').waitFor();
      expect(await device.credentialCount()).toBe(0);
      expect(await passkeysOf(customer.id)).toHaveLength(0);
    } finally {
      await device.close();
    }
  });

  it('answers a malformed registration and a replayed sign-in with the page and its reason, never a 500', async () => {
    const customer = await createCustomer('pk-bad');
    const device = await openDevice();
    const { page } = device;
    try {
      await signInToDashboard(page, customer.username, customer.password);
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
      expect(await passkeysOf(customer.id)).toHaveLength(0);
      await page.getByRole('button', { name: 'Add a passkey' }).click();
      await page.getByRole('status').filter({ hasText: 'Passkey added.' }).waitFor();

      // A real sign-in, captured, then posted again: the second finds its challenge spent.
      await device.context.clearCookies();
      let captured = '';
      await page.route('**/account/passkeys/sign-in', async (route) => {
        captured = route.request().postData() ?? '';
        await route.continue();
      });
      await page.goto(`${h.issuer}/account/login`);
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await page.getByRole('heading', { name: 'Active', exact: true }).waitFor();
      const replay = await page.request.post(`${h.issuer}/account/passkeys/sign-in`, {
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: h.issuer },
        data: captured,
      });
      expect(replay.status()).toBe(400);
      expect(await replay.text()).toContain('This passkey response was used already.');
    } finally {
      await device.close();
    }
  });
});

describeInBrowser('a passkey at an authorization', () => {
  it('signs in with the passkey alone and approves a payment whose challenge carries its values: acr sca, amr hwk user mfa (RTS Art. 4, 5; RFC 8176)', async () => {
    const customer = await createCustomer('pk-pay');
    const device = await openDevice();
    try {
      await enrol(device, customer);
      const consentId = await lodgePayment('12.34');
      const { callback, codeVerifier } = await startAuthorization(device, consentId);
      const { page } = device;
      // Art. 5(1)(a): the amount and payee beside the passkey button.
      await page.getByRole('heading', { name: 'Or approve with a passkey' }).waitFor();
      await expect(page.getByText('ACME Energy Ltd').isVisible()).resolves.toBe(true);
      await checkAccessible(page);
      // Keyboard: the passkey button is an ordinary button.
      await page.getByRole('button', { name: 'Approve £12.34 with a passkey' }).focus();
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: /^Confirm payment of / }).waitFor();
      await page.getByRole('button', { name: 'Confirm payment' }).click();
      const returned = await callback;
      expect(returned.searchParams.get('error')).toBeNull();
      const { body } = await redeem(tpp, { params: oauth.validateAuthResponse(tpp.as, tpp.client, returned, oauth.skipStateCheck), codeVerifier });
      const idToken = decodeJwt(body.id_token as string);
      expect(idToken.acr).toBe('urn:openbanking:psd2:sca');
      expect(idToken.amr).toEqual(['hwk', 'user', 'mfa']);
      // The consent records the SCA and what it was linked to: exactly this payment.
      const {
        rows: [row],
      } = await h.moat.storage.sql.query<{ status: string; sca_link_hash: string; requested: never }>(
        'SELECT status, sca_link_hash, requested FROM consent WHERE id = $1',
        [consentId],
      );
      expect(row!.status).toBe('Authorised');
      expect(row!.sca_link_hash).toBe(paymentLinkHash(paymentLinkOf(consentId, row!.requested)));
    } finally {
      await device.close();
    }
  });

  it('refuses the payment when its amount changed between the passkey and the approval (RTS Art. 5(1)(d))', async () => {
    const customer = await createCustomer('pk-tamper');
    const device = await openDevice();
    try {
      await enrol(device, customer);
      const consentId = await lodgePayment('20.00');
      const { callback } = await startAuthorization(device, consentId);
      const { page } = device;
      await page.getByRole('button', { name: 'Approve £20.00 with a passkey' }).click();
      await page.getByRole('heading', { name: /^Confirm payment of / }).waitFor();
      await changeAmount(consentId, '2000.00');
      await page.getByRole('button', { name: 'Confirm payment' }).click();
      const returned = await callback;
      expect(returned.searchParams.get('error')).toBe('access_denied');
      expect(returned.searchParams.get('error_description')).toMatch(/RTS Art\. 5/);
      const {
        rows: [row],
      } = await h.moat.storage.sql.query<{ status: string }>('SELECT status FROM consent WHERE id = $1', [consentId]);
      expect(row!.status).toBe('AwaitingAuthorisation');
    } finally {
      await device.close();
    }
  });

  it('refuses an assertion whose challenge was linked to other values, with the new values on the page', async () => {
    const customer = await createCustomer('pk-relink');
    const device = await openDevice();
    try {
      await enrol(device, customer);
      const consentId = await lodgePayment('30.00');
      const { callback } = await startAuthorization(device, consentId);
      const { page } = device;
      await page.getByRole('button', { name: 'Approve £30.00 with a passkey' }).waitFor();
      // The page (and its challenge) were made for £30.00; the payment is now another.
      await changeAmount(consentId, '300.00');
      await page.getByRole('button', { name: 'Approve £30.00 with a passkey' }).click();
      await page.getByRole('alert').filter({ hasText: 'The payment details changed while you were approving.' }).waitFor();
      // The page now shows, and links its new challenge to, the payment as it is.
      await page.getByRole('button', { name: 'Approve £300.00 with a passkey' }).click();
      await page.getByRole('heading', { name: /^Confirm payment of / }).waitFor();
      await page.getByRole('button', { name: 'Confirm payment' }).click();
      expect((await callback).searchParams.get('error')).toBeNull();
    } finally {
      await device.close();
    }
  });
});

describe("operator reset of a customer's passkeys", () => {
  it('removes every passkey of the customer and audits who did it and why', async () => {
    await h.moat.storage.sql.query(`INSERT INTO customer (id, username, password_hash, name) VALUES ('cust-reset', 'reset', 'x', 'Reset Example')`);
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
    const unknown = await adminRequest(port, 'POST', '/customers/cust-nobody/factors/passkeys/reset', { token: adminToken(h), body: { reason: 'typo' } });
    expect(unknown).toMatchObject({ status: 404, body: { error: 'not_found', error_description: 'customer cust-nobody does not exist' } });
    const reset = await adminRequest(port, 'POST', '/customers/cust-reset/factors/passkeys/reset', {
      token: adminToken(h),
      body: { reason: 'lost phone, identity checked in branch' },
    });
    expect(reset).toEqual({ status: 200, body: { customerId: 'cust-reset', factor: 'passkey', removed: 2 } });
    expect(await passkeysOf('cust-reset')).toHaveLength(0);
    await h.moat.audit.drain();
    const [event] = await h.moat.audit.query({ customerId: 'cust-reset', type: 'factor.reset' });
    expect(event).toMatchObject({
      actor: 'operator',
      actorId: 'admin-token',
      detail: { factor: 'passkey', removed: 2, reason: 'lost phone, identity checked in branch' },
    });
  });
});

describeInBrowser('passkeys in Brazilian Portuguese, with JavaScript on (issue 18 point 8)', () => {
  const checkPage = (page: Page, name: string) => checkPageInLanguage(page, name, 'pt-BR');

  it('enrols a passkey from the dashboard and approves a payment with it alone at an authorization, every page in pt-BR', async () => {
    const customer = await createCustomer('pk-pt');
    const device = await openDevice({ locale: 'pt-BR', viewport: VIEWPORTS.desktop });
    const { page } = device;
    try {
      // The dashboard's sign-in page, its passkey form shown (the script ran).
      await page.goto(`${h.issuer}/account/login`);
      await expect(page.getByRole('button', { name: 'Entrar com uma chave de acesso' }).isVisible()).resolves.toBe(true);
      await checkPage(page, 'passkeys-login-pt-BR');
      await page.getByLabel('Usuário').fill(customer.username);
      await page.getByLabel('Senha').fill(customer.password);
      await page.getByLabel('Senha').press('Enter');
      await page.getByRole('heading', { name: 'Ativos', exact: true }).waitFor();
      await page.goto(`${h.issuer}/account/passkeys`);
      await page.getByRole('heading', { name: 'Suas chaves de acesso' }).waitFor();
      await expect(page.getByText('Adicionar uma chave de acesso precisa de JavaScript').isVisible()).resolves.toBe(false);
      await checkPage(page, 'passkeys-dashboard-pt-BR');
      await page.getByLabel('Dê um nome a ela, para reconhecê-la depois').fill('Celular');
      await page.getByRole('button', { name: 'Adicionar uma chave de acesso' }).click();
      await page.getByRole('status').filter({ hasText: 'Chave de acesso adicionada.' }).waitFor();
      await expect(page.locator('main').innerText()).resolves.toMatch(/Adicionada em\s+\d{1,2} de \p{L}+ de \d{4}/u);
      await checkPage(page, 'passkeys-added-pt-BR');

      // At an authorization in pt-BR: the payment beside the passkey button (RTS Art. 5(1)(a)).
      const consentId = await lodgePayment('12.34');
      const { callback } = await catchTppRedirect(page, tpp.redirectUri);
      const { requestUri } = await pushAuthorization(tpp, { scope: 'openid payments', extraParams: { claims: intentClaims(consentId), ui_locales: 'pt-BR' } });
      await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      await page.getByRole('heading', { name: 'Ou aprove com uma chave de acesso' }).waitFor();
      await expect(page.getByText('ACME Energy Ltd').isVisible()).resolves.toBe(true);
      await expect(page.locator('main p.lead').textContent()).resolves.toBe('Test Fintech pede que você confirme um pagamento. Entre para revisá-lo.');
      await checkPage(page, 'passkey-payment-pt-BR');
      await page.getByRole('button', { name: /^Aprovar £\s?12,34 com uma chave de acesso$/ }).click();
      await page.getByRole('heading', { name: /^Confirmar pagamento de £\s?12,34 para ACME Energy Ltd$/ }).waitFor();
      await page.getByRole('button', { name: 'Confirmar pagamento' }).click();
      expect((await callback).searchParams.get('code')).toBeTruthy();
    } finally {
      await device.close();
    }
  });
});

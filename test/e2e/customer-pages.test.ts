import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';
import * as oauth from 'oauth4webapi';
import { redeem } from '../support/consents.ts';
import type { Page } from 'playwright-core';
import type { Harness } from '../support/moat-harness.ts';
import { onboardTpp, pushAuthorization, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import { chromiumAvailable, useChromium, useTabs, VIEWPORTS, catchTppRedirect, type Tab } from '../support/chromium.ts';
import { checkAccessible, checkAxe, checkAxeWithoutScript, checkTargetsAndFocus, shoot } from '../support/page-checks.ts';

/*
 * The customer pages as a bank's UX and conduct teams review them (issue 18), in real Chromium at
 * 1280×800 and 390×844, with axe-core on every state: a refusal is never undone on a re-render,
 * the payment screen speaks of a payment, and the consent screen puts the decision in reach.
 * Screenshots land in test-output/screenshots (customer-*.png).
 */

// Runs in the browser (Moat's TypeScript has no DOM library).
declare const document: any;

const describeInBrowser = chromiumAvailable() ? describe : describe.skip;

let h: Harness;
let tpp: RegisteredTpp;
let eidasTpp: RegisteredTpp;
// Before the Moat: Jest runs afterAll hooks in the order they were declared, and the browser's
// connections must be gone before the Moat closes (useTabs).
const chromium = useChromium();
const tabs = useTabs(chromium);

useMoatWithTpp((started) => ({ h, tpp } = started), {
  // The bank's charges by language (issue 18 point 8): the default on English pages, its own on pt-BR ones.
  // A bank in São Paulo: dates and times in its zone, named (issue 18 point 6).
  config: { branding: { paymentCharges: { default: 'No charge from Moat Bank', 'pt-BR': 'Sem tarifa do Moat Bank' }, timeZone: 'America/Sao_Paulo' } },
});
beforeAll(async () => {
  if (!chromiumAvailable()) return;
  // A QWAC-style certificate: its organizationIdentifier names the regulator (ETSI TS 119 495 §5.2.1).
  eidasTpp = await onboardTpp(h, { name: 'Acme Fintech', certificate: { eidas: true } });
});
afterAll(async () => {
  await eidasTpp?.close();
});

const ACCOUNT_INFORMATION = JSON.stringify([
  {
    type: 'account_information',
    permissions: ['ReadAccountsDetail', 'ReadBalances', 'ReadTransactionsDetail', 'ReadTransactionsCredits', 'ReadTransactionsDebits', 'ReadParty'],
    expirationDateTime: '2031-06-30T00:00:00Z',
  },
]);

function payment(amount: string, currency = 'GBP'): string {
  return JSON.stringify([
    {
      type: 'payment_initiation',
      instructedAmount: { amount, currency },
      creditorName: 'Green Energy Co',
      creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '20003012345678' },
      remittanceInformation: { reference: 'ACCT 5531' },
    },
  ]);
}

interface Journey extends Tab {
  callback: Promise<URL>;
}

async function openJourney(client: RegisteredTpp, options: { javaScript?: boolean } = {}): Promise<Journey> {
  const tab = await tabs({ javaScriptEnabled: options.javaScript ?? true });
  const { callback } = await catchTppRedirect(tab.page, client.redirectUri);
  return { ...tab, callback };
}

/** Sign in with password and one-time code, by keyboard alone. */
async function signIn(page: Page, username: 'alice' | 'bob'): Promise<void> {
  const customer = SANDBOX_CUSTOMERS.find((c) => c.username === username)!;
  await page.getByLabel('Username').fill(customer.username);
  await page.getByLabel('Password').fill(customer.password);
  await page.getByLabel('Password').press('Enter');
  const code = page.getByLabel(/6-digit code/);
  await code.waitFor();
  await code.fill(totpCode(customer.totpSecret, new Date()));
  await code.press('Enter');
}

/** Starts the authorization in the journey's browser; returns the PKCE verifier, to redeem the code. */
async function authorize(journey: Journey, client: RegisteredTpp, params: Record<string, string>, scope = 'openid accounts'): Promise<string> {
  const { requestUri, codeVerifier } = await pushAuthorization(client, { scope, extraParams: params });
  await journey.page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: client.client.client_id, request_uri: requestUri })}`);
  return codeVerifier;
}

/** Every check on the page as it stands; a page shown with JavaScript off is checked by axe in a script-free copy. */
async function checkPage(page: Page, name: string, options: { javaScript?: boolean } = {}): Promise<void> {
  await checkAccessible(page);
  await (options.javaScript === false ? checkAxeWithoutScript(page) : checkAxe(page));
  await checkTargetsAndFocus(page);
  await shoot(page, `customer-${name}`);
}

const NO_SCRIPT = { javaScript: false } as const;

describeInBrowser('customer pages a bank would sign off (issue 18)', () => {
  it('keeps a refused data group unticked when the page comes back with an error, and moves focus to the error (defect 1)', async () => {
    const journey = await openJourney(tpp);
    const { page } = journey;
    try {
      await authorize(journey, tpp, { authorization_details: ACCOUNT_INFORMATION });
      await signIn(page, 'alice');
      await page.getByRole('heading', { name: 'Test Fintech is asking for access to your information' }).waitFor();
      await checkPage(page, 'consent-account-access');
      await page.getByLabel('Your contact and party details').uncheck();
      await page.getByLabel(/Everyday current account/).check();
      await page.getByLabel(/Everyday current account/).uncheck();
      await page.getByRole('button', { name: 'Share with Test Fintech' }).click();
      await expect(page.getByRole('alert').textContent()).resolves.toContain('Choose at least one account to share.');
      // What the customer refused stays refused; what they kept stays kept.
      expect(await page.getByLabel('Your contact and party details').isChecked()).toBe(false);
      expect(await page.getByLabel('Your account transactions').isChecked()).toBe(true);
      expect(await page.getByLabel('Your account details').isChecked()).toBe(true);
      // WCAG 3.3.1 / 4.1.2: the error is where focus is, and the fields in error say so.
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('consent-error');
      expect(await page.getByLabel(/Everyday current account/).getAttribute('aria-invalid')).toBe('true');
      expect(await page.getByLabel(/Everyday current account/).getAttribute('aria-describedby')).toBe('consent-error');
      await checkPage(page, 'consent-error');

      await page.getByLabel(/Rainy day saver/).check();
      await page.getByRole('button', { name: 'Share with Test Fintech' }).click();
      expect((await journey.callback).searchParams.get('code')).toBeTruthy();
    } finally {
      await journey.close();
    }
  });

  it('asks to confirm a payment, with its date and charges, and no sentence about stopping access (defect 2)', async () => {
    const journey = await openJourney(tpp);
    const { page } = journey;
    try {
      await authorize(journey, tpp, { authorization_details: payment('249.99') }, 'openid payments');
      // From the sign-in page on, a payment is announced as one, not as access to the account.
      await expect(page.locator('main p.lead').textContent()).resolves.toBe('Test Fintech asks you to confirm a payment. Sign in to review it.');
      await signIn(page, 'alice');
      await page.getByRole('heading', { name: 'Confirm payment of £249.99 to Green Energy Co' }).waitFor();
      expect(await page.title()).toMatch(/^Confirm payment ·/);
      const text = await page.locator('main').innerText();
      expect(text).toMatch(/Payment date\s+Today, \d{1,2} \w+ \d{4}/);
      expect(text).toMatch(/Charges\s+No charge from Moat Bank/);
      expect(text).not.toMatch(/stop|access/i);
      await expect(page.getByRole('button', { name: 'Confirm payment' }).isVisible()).resolves.toBe(true);
      await expect(page.getByRole('button', { name: 'Allow' }).count()).resolves.toBe(0);
      // The euro account is not offered, and the page says why.
      expect(text).toContain('Euro account');
      expect(text).toContain('This account is in EUR; the payment is in GBP.');
      await checkPage(page, 'payment');
      await page.getByLabel(/Rainy day saver/).check();
      await page.getByRole('button', { name: 'Confirm payment' }).click();
      expect((await journey.callback).searchParams.get('code')).toBeTruthy();
    } finally {
      await journey.close();
    }
  });

  it('offers no confirm button when no account can pay, and says which accounts were left out and why (defect 2)', async () => {
    const journey = await openJourney(tpp);
    const { page } = journey;
    try {
      // More than the sandbox account service lets any account pay (SANDBOX_AVAILABLE_FUNDS).
      await authorize(journey, tpp, { authorization_details: payment('20000.00') }, 'openid payments');
      await signIn(page, 'alice');
      await page.getByRole('heading', { name: 'Confirm payment of £20,000.00 to Green Energy Co' }).waitFor();
      await expect(page.getByRole('button', { name: 'Confirm payment' }).count()).resolves.toBe(0);
      const text = await page.locator('main').innerText();
      expect(text).toContain('You cannot make this payment from any of your accounts.');
      for (const account of ['Everyday current account', 'Rainy day saver'])
        expect(text).toMatch(new RegExp(`${account}[^\\n]*\\n[^\\n]*cannot make this payment from this account`));
      expect(text).toContain('This account is in EUR; the payment is in GBP.');
      await checkPage(page, 'payment-no-account');
      await page.getByRole('button', { name: 'Cancel and return to Test Fintech' }).click();
      expect((await journey.callback).searchParams.get('error')).toBe('access_denied');
    } finally {
      await journey.close();
    }
  });

  it("names the TPP's regulator, expands each data group to its permissions, and labels the decision specifically (point 4)", async () => {
    const journey = await openJourney(eidasTpp);
    const { page } = journey;
    try {
      await authorize(journey, eidasTpp, { authorization_details: ACCOUNT_INFORMATION });
      await signIn(page, 'bob');
      await page.getByRole('heading', { name: 'Acme Fintech is asking for access to your information' }).waitFor();
      const text = await page.locator('main').innerText();
      expect(text).toMatch(/Regulated by\s+Sandbox test regulator, authorisation number/);
      expect(text).not.toMatch(/organisation /);
      // Each group opens to the individual permissions asked for in it.
      await page.getByText('What this includes: Your contact and party details').click();
      await expect(page.getByText("The account holder's name, address, phone number and email address").isVisible()).resolves.toBe(true);
      await expect(page.getByRole('button', { name: 'Share with Acme Fintech' }).isVisible()).resolves.toBe(true);
      await expect(page.getByRole('button', { name: "Don't share" }).isVisible()).resolves.toBe(true);
      // On a phone, the decision is on screen without scrolling past the details.
      await page.setViewportSize(VIEWPORTS.phone);
      await page.evaluate(() => document.scrollingElement.scrollTo(0, 0));
      await expect(
        page.getByRole('button', { name: 'Share with Acme Fintech' }).evaluate((b: any) => {
          const box = b.getBoundingClientRect();
          return box.top >= 0 && box.bottom <= document.documentElement.clientHeight;
        }),
      ).resolves.toBe(true);
      await page.setViewportSize(VIEWPORTS.desktop);
      await checkPage(page, 'consent-regulated-tpp');
      // Keyboard only: Don't share is reached by Tab and pressed with Enter.
      await page.getByRole('button', { name: 'Share with Acme Fintech' }).focus();
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Don't share");
      await page.keyboard.press('Enter');
      expect((await journey.callback).searchParams.get('error')).toBe('access_denied');
    } finally {
      await journey.close();
    }
  });

  it("shows the TPP's purpose when it sends one, as its words and escaped (point 4; OpenID Connect for Identity Assurance 1.0 purpose)", async () => {
    const journey = await openJourney(tpp);
    const { page } = journey;
    try {
      const purpose = 'To check you can afford the <b>loan</b> you applied for & to show your balance';
      await authorize(journey, tpp, { authorization_details: ACCOUNT_INFORMATION, purpose });
      await signIn(page, 'bob');
      await page.getByRole('heading', { name: 'Test Fintech is asking for access to your information' }).waitFor();
      const text = await page.locator('main').innerText();
      expect(text).toContain(`Reason given by Test Fintech\n${purpose}`);
      // Quoted, as the TPP's words, and shown as text: the TPP's markup is not the page's.
      await expect(page.locator('main q.purpose').textContent()).resolves.toBe(purpose);
      await expect(page.locator('main b').count()).resolves.toBe(0);
      await checkPage(page, 'consent-purpose');
      await page.getByRole('button', { name: "Don't share" }).click();
      expect((await journey.callback).searchParams.get('error')).toBe('access_denied');
    } finally {
      await journey.close();
    }
  });

  it('warns two minutes before the interaction times out, then says it has (WCAG 2.2.1)', async () => {
    const journey = await openJourney(tpp);
    const { page } = journey;
    try {
      await page.clock.install();
      await authorize(journey, tpp, { authorization_details: ACCOUNT_INFORMATION });
      await signIn(page, 'bob');
      await page.getByRole('heading', { name: 'Test Fintech is asking for access to your information' }).waitFor();
      // The timer script has run (it is at the end of the page) before the clock moves.
      await page.waitForLoadState('load');
      const warning = page.locator('[data-time-warning]');
      await expect(warning.isVisible()).resolves.toBe(false);
      await page.clock.fastForward('08:30');
      await expect(warning.isVisible()).resolves.toBe(true);
      await expect(warning.textContent()).resolves.toContain('Less than 2 minutes left');
      await checkPage(page, 'consent-time-warning');
      await page.clock.fastForward('02:00');
      await expect(warning.textContent()).resolves.toContain('This page has timed out. Nothing has been shared.');
    } finally {
      // The clock is installed in the context for good: this tab goes to no other test.
      await journey.discard();
    }
  });

  it("explains errors in plain words with a way back, the bank's contact and a support reference, never OAuth codes (defect 3)", async () => {
    const journey = await openJourney(tpp);
    const { page } = journey;
    try {
      // An interaction whose cookie is gone (another browser, or it timed out).
      const expired = await page.goto(`${h.issuer}/interaction/no-such-interaction`);
      expect(expired!.status()).toBe(400);
      await page.getByRole('heading', { name: 'Your session with the bank timed out' }).waitFor();
      let text = await page.locator('main').innerText();
      expect(text).toContain('Nothing has been shared and no payment has been made.');
      expect(text).toContain('contact Moat Bank on the number on the back of your card');
      expect(text).toMatch(/Support reference: [0-9a-f-]{36}/);
      expect(text).not.toMatch(/invalid_request|cookie|interaction session/);
      await checkPage(page, 'error-session-expired');

      // A request the bank cannot accept (an unknown client): oidc-provider cannot redirect it, so a page.
      await page.goto(
        `${h.issuer}/authorize?${new URLSearchParams({ client_id: 'no-such-client', request_uri: 'urn:ietf:params:oauth:request_uri:nothing' })}`,
      );
      await page.getByRole('heading', { name: 'We could not start this request' }).waitFor();
      text = await page.locator('main').innerText();
      expect(text).not.toMatch(/invalid_client|invalid_request|client_id/);
      await checkPage(page, 'error-request');

      // A form posted without its page's token: the page expired.
      await authorize(journey, tpp, { authorization_details: ACCOUNT_INFORMATION });
      await page.getByLabel('Username').waitFor();
      await page.evaluate(() => {
        document.querySelector('input[name=csrf]').value = 'stale';
      });
      await page.getByLabel('Username').fill('bob');
      await page.getByLabel('Password').fill('bob-sandbox');
      await page.getByLabel('Password').press('Enter');
      await page.getByRole('heading', { name: 'This page has expired' }).waitFor();
      // The interaction is known: the page names the TPP to go back to.
      await expect(page.locator('main').innerText()).resolves.toContain('Test Fintech');
      await checkPage(page, 'error-form-expired');
    } finally {
      await journey.close();
    }
  });

  // After the tests above: alice has shared account information, authorised a £249.99 payment and refused a £20,000 one.
  it('shows payments in their real state, accounts by nickname, and stop buttons that name the TPP and the consent (point 6)', async () => {
    const approve = await openJourney(tpp);
    try {
      // A second consent for the same TPP: the two stop buttons must still be told apart.
      const verifier = await authorize(approve, tpp, { authorization_details: ACCOUNT_INFORMATION });
      await signIn(approve.page, 'alice');
      await approve.page.getByLabel(/Everyday current account/).check();
      await approve.page.getByRole('button', { name: 'Share with Test Fintech' }).click();
      // The TPP redeems the code: a token issued is a use of the consent, which the dashboard shows (point 6).
      const params = oauth.validateAuthResponse(tpp.as, tpp.client, await approve.callback, oauth.skipStateCheck);
      expect((await redeem(tpp, { params, codeVerifier: verifier })).status).toBe(200);
    } finally {
      await approve.close();
    }
    const journey = await openJourney(tpp);
    const { page } = journey;
    try {
      await page.goto(`${h.issuer}/account`);
      await signIn(page, 'alice');
      await page.getByRole('heading', { name: 'Active', exact: true }).waitFor();
      const payments = page.locator('section[aria-labelledby="payments-heading"]');
      const paid = await payments.innerText();
      expect(paid).toMatch(/Payment of £249\.99 to Green Energy Co\s+Waiting to be paid/);
      expect(paid).toMatch(/Payment of £20,000\.00 to Green Energy Co\s+Refused[\s\S]*Refused on/);
      expect(paid).toContain('Rainy day saver (••••4321)');
      expect(paid).not.toContain('Stop sharing');
      const active = await page.locator('section[aria-labelledby="active-heading"]').innerText();
      expect(active).toContain('Everyday current account (••••5678)');
      expect(active).not.toMatch(/Access: |openid/);
      // Times in the bank's zone (America/Sao_Paulo), never the server's UTC. (The last use is written
      // off the token request's path, so its time is asserted in the later pt-BR test and in
      // consent-dashboard.test.ts, which wait for it.)
      expect(active).not.toContain('UTC');
      // WCAG 2.4.6 / 4.1.2: every stop button's accessible name is its own.
      const names = await page
        .getByRole('link', { name: /^Stop sharing with Test Fintech/ })
        .evaluateAll((links: any[]) => links.map((l) => l.textContent.trim()));
      expect(names.length).toBeGreaterThanOrEqual(2);
      expect(new Set(names).size).toBe(names.length);
      await checkPage(page, 'dashboard');

      await page
        .getByRole('link', { name: /^Stop sharing with Test Fintech/ })
        .first()
        .click();
      await page.getByRole('heading', { name: 'Stop sharing with Test Fintech?' }).waitFor();
      const confirm = await page.locator('main').innerText();
      expect(confirm).toContain('What stops being shared');
      expect(confirm).toContain('Stopping does not delete what Test Fintech has already collected.');
      await checkPage(page, 'revoke-confirm');
      await page.getByRole('button', { name: 'Yes, stop sharing' }).click();
      await expect(page.getByRole('status').textContent()).resolves.toBe('Done: Test Fintech can no longer use this consent.');
      await checkPage(page, 'dashboard-after-revoke');
    } finally {
      await journey.close();
    }
  });

  it('speaks Brazilian Portuguese when the TPP asks with ui_locales, with amounts and dates formatted for it (point 8)', async () => {
    const journey = await openJourney(tpp);
    const { page } = journey;
    try {
      await authorize(
        journey,
        tpp,
        { authorization_details: payment('249.99'), ui_locales: 'pt-BR', purpose: 'Pagar a sua conta de energia de dezembro' },
        'openid payments',
      );
      // The sign-in page speaks it too (labels by the catalogue: Usuário, Senha).
      await page.getByRole('heading', { name: 'Entre para continuar' }).waitFor();
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('pt-BR');
      await expect(page.locator('main p.lead').textContent()).resolves.toBe('Test Fintech pede que você confirme um pagamento. Entre para revisá-lo.');
      await checkPage(page, 'login-pt-BR');
      const customer = SANDBOX_CUSTOMERS.find((c) => c.username === 'alice')!;
      await page.getByLabel('Usuário').fill(customer.username);
      await page.getByLabel('Senha').fill(customer.password);
      await page.getByLabel('Senha').press('Enter');
      // The one-time code page speaks it too (issue 18 point 8), with the payment beside the field.
      await page.getByRole('heading', { name: 'Confirme o pagamento com seu código' }).waitFor();
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('pt-BR');
      await checkPage(page, 'totp-payment-pt-BR');
      const code = page.getByLabel(/^Código de 6 dígitos para £\s?249,99 a Green Energy Co$/);
      await code.waitFor();
      await code.fill(totpCode(customer.totpSecret, new Date()));
      await code.press('Enter');
      await page.getByRole('heading', { name: /^Confirmar pagamento de £\s?249,99 para Green Energy Co$/ }).waitFor();
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('pt-BR');
      const text = await page.locator('main').innerText();
      expect(text).toMatch(/Data do pagamento\s+Hoje, \d{1,2} de \p{L}+ de \d{4}/u);
      expect(text).toContain('Esta conta está em EUR; o pagamento está em GBP.');
      expect(text).toMatch(/Tarifas\s+Sem tarifa do Moat Bank/);
      // The TPP's purpose, in the language it sent it (OpenID Connect for Identity Assurance 1.0 purpose).
      expect(text).toContain('Motivo informado por Test Fintech\nPagar a sua conta de energia de dezembro');
      await expect(page.getByRole('button', { name: 'Confirmar pagamento' }).isVisible()).resolves.toBe(true);
      await checkPage(page, 'payment-pt-BR');
      await page.getByRole('button', { name: 'Cancelar pagamento' }).click();
      expect((await journey.callback).searchParams.get('error')).toBe('access_denied');
    } finally {
      await journey.close();
    }
  });

  it('speaks Brazilian Portuguese on an error page when the browser asks with Accept-Language (point 8)', async () => {
    const tab = await tabs({ locale: 'pt-BR' });
    const { page } = tab;
    try {
      await page.goto(`${h.issuer}/interaction/no-such-interaction`);
      await page.getByRole('heading', { name: 'Sua sessão com o banco expirou' }).waitFor();
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('pt-BR');
      await expect(page.locator('main').innerText()).resolves.toContain('Nada foi compartilhado e nenhum pagamento foi feito.');
      await checkPage(page, 'error-session-expired-pt-BR');

      // The dashboard too, in the browser's language: statuses, dates and the revoke page.
      await page.goto(`${h.issuer}/account`);
      // Its sign-in and one-time code pages too.
      await page.getByRole('heading', { name: 'Aplicativos conectados' }).waitFor();
      expect(await page.title()).toMatch(/^Entre para gerenciar aplicativos conectados ·/);
      await checkPage(page, 'dashboard-login-pt-BR');
      const customer = SANDBOX_CUSTOMERS.find((c) => c.username === 'alice')!;
      await page.getByLabel('Usuário').fill(customer.username);
      await page.getByLabel('Senha').fill('not-the-password');
      await page.getByLabel('Senha').press('Enter');
      await expect(page.getByRole('alert').textContent()).resolves.toBe('O usuário ou a senha estão incorretos.');
      await page.getByLabel('Senha').fill(customer.password);
      await page.getByLabel('Senha').press('Enter');
      const code = page.getByLabel('Código de 6 dígitos');
      await code.waitFor();
      await code.fill('12345');
      await code.press('Enter');
      await expect(page.getByRole('alert').textContent()).resolves.toBe('O código tem 6 dígitos; você digitou 5.');
      await checkPage(page, 'dashboard-code-error-pt-BR');
      await code.fill(totpCode(customer.totpSecret, new Date()));
      await code.press('Enter');
      await page.locator('#payments-heading').waitFor();
      const text = await page.locator('main').innerText();
      expect(text).toMatch(/Pagamento de £\s?249,99 para Green Energy Co\s+Aguardando pagamento/);
      expect(text).toMatch(/\d{1,2} de \p{L}+ de \d{4}/u);
      // When the TPP last used a consent, in the page's language (the token issued in the point 6 test), and one never used.
      expect(text).toMatch(/Último uso por Test Fintech\s+\d{1,2} de \p{L}+ de \d{4}\D{1,6}\d{2}:\d{2} BRT/u);
      expect(text).not.toContain('UTC');
      expect(text).toMatch(/Último uso por Test Fintech\s+Ainda não usado/);
      await checkPage(page, 'dashboard-pt-BR');
      // The dashboard's other pages speak it too.
      await page.getByRole('link', { name: 'Segurança de acesso' }).click();
      await page.getByRole('heading', { name: 'Segurança de acesso' }).waitFor();
      await expect(page.locator('main').innerText()).resolves.toContain('Aplicativo autenticador');
      await checkPage(page, 'dashboard-security-pt-BR');
      await page.goto(`${h.issuer}/account/passkeys`);
      await page.getByRole('heading', { name: 'Suas chaves de acesso' }).waitFor();
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('pt-BR');
      await checkPage(page, 'dashboard-passkeys-pt-BR');
    } finally {
      await tab.close();
    }
  });

  it('completes a payment without JavaScript', async () => {
    const journey = await openJourney(tpp, { javaScript: false });
    const { page } = journey;
    try {
      await authorize(journey, tpp, { authorization_details: payment('12.00') }, 'openid payments');
      await signIn(page, 'bob');
      await page.getByRole('heading', { name: 'Confirm payment of £12.00 to Green Energy Co' }).waitFor();
      // WCAG 2.2.1: without JavaScript, the time limit is said on the page (interactionTtl: 600 s).
      await expect(page.getByText(/this page times out in about (10|9) minutes/).isVisible()).resolves.toBe(true);
      await page.getByRole('button', { name: 'Confirm payment' }).click();
      expect((await journey.callback).searchParams.get('code')).toBeTruthy();
    } finally {
      await journey.close();
    }
  });

  it('completes an account-access consent without JavaScript, keeping what the customer chose when the page comes back with an error (defect 1)', async () => {
    const journey = await openJourney(tpp, { javaScript: false });
    const { page } = journey;
    try {
      await authorize(journey, tpp, { authorization_details: ACCOUNT_INFORMATION });
      await signIn(page, 'bob');
      await page.getByRole('heading', { name: 'Test Fintech is asking for access to your information' }).waitFor();
      // WCAG 2.2.1: without JavaScript, the time limit is said on the page (interactionTtl: 600 s).
      await expect(page.getByText(/this page times out in about (10|9) minutes/).isVisible()).resolves.toBe(true);
      // Each group's permissions open without script (a <details> disclosure).
      await page.getByText('What this includes: Your contact and party details').click();
      await expect(page.getByText("The account holder's name, address, phone number and email address").isVisible()).resolves.toBe(true);
      await checkPage(page, 'consent-nojs', NO_SCRIPT);
      await page.getByLabel('Your contact and party details').uncheck();
      await page.getByLabel(/Current account/).uncheck();
      await page.getByRole('button', { name: 'Share with Test Fintech' }).click();
      // The server's re-render, not a script, keeps the refusal and says what is missing.
      await expect(page.getByRole('alert').textContent()).resolves.toContain('Choose at least one account to share.');
      expect(await page.getByLabel('Your contact and party details').isChecked()).toBe(false);
      expect(await page.getByLabel('Your account transactions').isChecked()).toBe(true);
      expect(await page.getByLabel(/Current account/).getAttribute('aria-invalid')).toBe('true');
      await checkPage(page, 'consent-error-nojs', NO_SCRIPT);
      await page.getByLabel(/Current account/).check();
      await page.getByRole('button', { name: 'Share with Test Fintech' }).click();
      expect((await journey.callback).searchParams.get('code')).toBeTruthy();
    } finally {
      await journey.close();
    }
  });

  it('shows every error page a browser can reach without JavaScript, with its way back and support reference (defect 3)', async () => {
    const journey = await openJourney(tpp, { javaScript: false });
    const { page } = journey;
    try {
      await page.goto(`${h.issuer}/interaction/no-such-interaction`);
      await page.getByRole('heading', { name: 'Your session with the bank timed out' }).waitFor();
      await expect(page.locator('main').innerText()).resolves.toMatch(/Support reference: [0-9a-f-]{36}/);
      await checkPage(page, 'error-session-expired-nojs', NO_SCRIPT);

      await page.goto(
        `${h.issuer}/authorize?${new URLSearchParams({ client_id: 'no-such-client', request_uri: 'urn:ietf:params:oauth:request_uri:nothing' })}`,
      );
      await page.getByRole('heading', { name: 'We could not start this request' }).waitFor();
      await checkPage(page, 'error-request-nojs', NO_SCRIPT);

      // A form posted with a token that is not its page's: the page expired. (The field is changed
      // through the DOM, which needs no page script.)
      await authorize(journey, tpp, { authorization_details: ACCOUNT_INFORMATION });
      await page.getByLabel('Username').waitFor();
      await page.locator('form:has(input[name=username]) input[name=csrf]').evaluate((input: any) => {
        input.value = 'stale';
      });
      await page.getByLabel('Username').fill('bob');
      await page.getByLabel('Password').fill('bob-sandbox');
      await page.getByLabel('Password').press('Enter');
      await page.getByRole('heading', { name: 'This page has expired' }).waitFor();
      await expect(page.locator('main').innerText()).resolves.toContain('Test Fintech');
      await checkPage(page, 'error-form-expired-nojs', NO_SCRIPT);
    } finally {
      await journey.close();
    }
  });

  it('says every error page a customer can reach in Brazilian Portuguese, each kind in its own words (point 8)', async () => {
    const tab = await tabs({ locale: 'pt-BR' });
    const { page } = tab;
    const shown = async (title: string, name: string) => {
      await page.getByRole('heading', { name: title }).waitFor();
      expect(await page.evaluate(() => document.documentElement.lang)).toBe('pt-BR');
      const text = await page.locator('main').innerText();
      expect(text).not.toMatch(/invalid_|not_found|cookie|Support reference|Nothing has been shared/);
      await checkPage(page, name);
      return text;
    };
    try {
      // request_problem: a request the bank cannot accept.
      await page.goto(
        `${h.issuer}/authorize?${new URLSearchParams({ client_id: 'no-such-client', request_uri: 'urn:ietf:params:oauth:request_uri:nothing' })}`,
      );
      expect(await shown('Não foi possível iniciar este pedido', 'error-request-pt-BR')).toMatch(/Referência para o atendimento: [0-9a-f-]{36}/);

      // form_expired: a sign-in posted with a stale token, in the authorization's language.
      const { requestUri } = await pushAuthorization(tpp, { extraParams: { authorization_details: ACCOUNT_INFORMATION, ui_locales: 'pt-BR' } });
      await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      await page.getByLabel('Usuário').waitFor();
      await page.locator('form:has(input[name=username]) input[name=csrf]').evaluate((input: any) => {
        input.value = 'stale';
      });
      await page.getByLabel('Usuário').fill('bob');
      await page.getByLabel('Senha').fill('bob-sandbox');
      await page.getByLabel('Senha').press('Enter');
      expect(await shown('Esta página expirou', 'error-form-expired-pt-BR')).toContain('Test Fintech');

      // not_found: a consent that is not in the customer's account.
      await page.goto(`${h.issuer}/account`);
      const bob = SANDBOX_CUSTOMERS.find((c) => c.username === 'bob')!;
      await page.getByLabel('Usuário').fill(bob.username);
      await page.getByLabel('Senha').fill(bob.password);
      await page.getByLabel('Senha').press('Enter');
      const code = page.getByLabel('Código de 6 dígitos');
      await code.waitFor();
      await code.fill(totpCode(bob.totpSecret, new Date()));
      await code.press('Enter');
      await page.locator('#payments-heading').waitFor();
      await page.goto(`${h.issuer}/account/consents/no-such-consent/revoke`);
      expect(await shown('Não encontramos isso', 'error-not-found-pt-BR')).toContain('Esse consentimento não existe na sua conta.');
      await page.getByRole('link', { name: 'Voltar aos seus consentimentos' }).click();
      await page.locator('#payments-heading').waitFor();
    } finally {
      await tab.close();
    }
  });

  // After the consent bob shared without JavaScript above.
  it('lets the customer stop sharing from the dashboard without JavaScript (point 6)', async () => {
    const journey = await openJourney(tpp, { javaScript: false });
    const { page } = journey;
    try {
      await page.goto(`${h.issuer}/account`);
      await signIn(page, 'bob');
      await page.getByRole('heading', { name: 'Active', exact: true }).waitFor();
      await checkPage(page, 'dashboard-nojs', NO_SCRIPT);
      await page
        .getByRole('link', { name: /^Stop sharing with Test Fintech/ })
        .first()
        .click();
      await page.getByRole('heading', { name: 'Stop sharing with Test Fintech?' }).waitFor();
      await checkPage(page, 'revoke-confirm-nojs', NO_SCRIPT);
      await page.getByRole('button', { name: 'Yes, stop sharing' }).click();
      await expect(page.getByRole('status').textContent()).resolves.toBe('Done: Test Fintech can no longer use this consent.');
    } finally {
      await journey.close();
    }
  });
});

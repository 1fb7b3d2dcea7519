import * as oauth from 'oauth4webapi';
import type { Page } from 'playwright-core';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';
import { cibaRegistration, startDecoupled } from '../support/ciba.ts';
import { chromiumAvailable, useChromium, useTabs, VIEWPORTS } from '../support/chromium.ts';
import { sandboxAccountsOf } from '../support/consents.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { checkAccessible, checkAxe, shoot } from '../support/page-checks.ts';
import { onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * The customer's side of a decoupled authorisation in a real browser: the sandbox bank app at
 * /sandbox/app. The customer signs in with password and one-time code, sees the TPP's request with
 * its binding message, chooses the accounts and approves with a fresh code; the TPP's poll then
 * gets its tokens (CIBA Core §10.1).
 */

const describeInBrowser = chromiumAvailable() ? describe : describe.skip;
const alice = SANDBOX_CUSTOMERS.find((c) => c.username === 'alice')!;

let h: Harness;
let tpp: RegisteredTpp;
/** The server's clock runs this far ahead: the TPP waits out the poll interval without the test sleeping. */
let offsetMs = 0;
const chromium = useChromium();
const tabs = useTabs(chromium);

beforeAll(async () => {
  // A bank in São Paulo: the app says when a request stops waiting in the bank's zone (issue 18 point 6).
  h = await startMoat({ now: () => new Date(Date.now() + offsetMs), config: { branding: { timeZone: 'America/Sao_Paulo' } } });
  tpp = await onboardTpp(h, { registration: cibaRegistration() });
});

afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

async function startRequest(bindingMessage: string, extra: Record<string, string> = {}): Promise<string> {
  return (await startDecoupled(tpp, { login_hint: 'cust-alice', binding_message: bindingMessage, ...extra })).auth_req_id;
}

async function signIn(page: Page): Promise<void> {
  await page.goto(`${h.issuer}/sandbox/app`);
  await page.getByLabel('Username').fill(alice.username);
  await page.getByLabel('Password').fill(alice.password);
  await page.getByLabel(/One-time code from your authenticator/).fill(totpCode(alice.totpSecret, new Date()));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${h.issuer}/sandbox/app`);
}

describeInBrowser('the sandbox bank app (/sandbox/app) in Chromium', () => {
  it("shows a payment's amount and payee where the customer approves it (RTS Art. 5(1)(a))", async () => {
    const payment = {
      type: 'payment_initiation',
      instructedAmount: { amount: '42.50', currency: 'GBP' },
      creditorName: 'ACME Energy Ltd',
      creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '08080021325698' },
    };
    const { auth_req_id: id } = await startDecoupled(tpp, { scope: 'openid', login_hint: 'cust-alice', authorization_details: JSON.stringify([payment]) });
    const tab = await tabs({ viewport: VIEWPORTS.desktop });
    try {
      const { page } = tab;
      await signIn(page);
      const card = page.locator(`[data-request="${id}"]`);
      expect(await card.locator('.amount').textContent()).toMatch(/42\.50/);
      expect(await card.locator('.payee').textContent()).toContain('ACME Energy Ltd');
      expect(await card.locator('input[name="accounts"]').first().getAttribute('type')).toBe('radio');
      await shoot(page, 'bank-app-payment');
      await card.getByRole('button', { name: 'Deny' }).click();
      await page.getByText('Request denied.').waitFor();
    } finally {
      await tab.close();
    }
  });

  it("shows the waiting request with its binding message and the TPP's purpose; approving with a fresh code gives the TPP its tokens for the accounts chosen", async () => {
    // OpenID Connect for Identity Assurance 1.0 purpose, at the backchannel endpoint as at PAR: shown as the consent screen shows it.
    const purpose = 'To check your <b>balance</b> before the till & print it';
    const id = await startRequest('Till 7 ref 4410', { purpose });
    const tab = await tabs({ viewport: VIEWPORTS.desktop });
    try {
      const { page } = tab;
      await signIn(page);
      const card = page.locator(`[data-request="${id}"]`);
      await card.waitFor();
      expect(await card.locator('.binding-message').textContent()).toBe('Till 7 ref 4410');
      await expect(card.innerText()).resolves.toMatch(/Waiting until \d{1,2} \p{L}{3,4} \d{4}, \d{2}:\d{2}:\d{2} GMT-3/u);
      // Quoted as the TPP's words, and as text: the TPP's markup is not the page's.
      await expect(card.innerText()).resolves.toContain(`Reason given by Test Fintech\n${purpose}`);
      expect(await card.locator('q.purpose').textContent()).toBe(purpose);
      expect(await card.locator('b').count()).toBe(0);
      await checkAccessible(page);
      await checkAxe(page);
      await shoot(page, 'bank-app-request');
      // Share the savings account only.
      const [current, savings, euro] = sandboxAccountsOf('alice') as [string, string, string];
      await card.locator(`input[name="accounts"][value="${current}"]`).uncheck();
      await card.locator(`input[name="accounts"][value="${euro}"]`).uncheck();
      await card.getByLabel('One-time code, to approve').fill(totpCode(alice.totpSecret, new Date()));
      await card.getByRole('button', { name: 'Approve' }).click();
      await page.getByText('Request approved.').waitFor();
      expect(await page.locator(`[data-request="${id}"]`).count()).toBe(0);

      const tokens = await oauth.processBackchannelAuthenticationGrantResponse(
        tpp.as,
        tpp.client,
        await oauth.backchannelAuthenticationGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), id, { [oauth.customFetch]: tpp.fetch }),
      );
      expect(oauth.getValidatedIdTokenClaims(tokens)).toMatchObject({ sub: 'cust-alice', acr: 'urn:openbanking:psd2:sca' });
      const consent = await h.moat.consents.getForClient(String(tokens.consent_id), tpp.client.client_id);
      expect(consent.granted).toMatchObject({ accounts: [expect.objectContaining({ accountId: savings })] });
    } finally {
      await tab.close();
    }
  });

  it("speaks the browser's language (Accept-Language pt-BR): sign-in, the request, its payment and the notices (issue 18 point 8)", async () => {
    const payment = {
      type: 'payment_initiation',
      instructedAmount: { amount: '1234.50', currency: 'GBP' },
      creditorName: 'ACME Energy Ltd',
      creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '08080021325698' },
    };
    const { auth_req_id: id } = await startDecoupled(tpp, {
      scope: 'openid',
      login_hint: 'cust-alice',
      binding_message: 'Caixa 3',
      purpose: 'Pagar a sua conta de energia de dezembro',
      authorization_details: JSON.stringify([payment]),
    });
    const tab = await tabs({ viewport: VIEWPORTS.desktop, locale: 'pt-BR' });
    try {
      const { page } = tab;
      await page.goto(`${h.issuer}/sandbox/app`);
      expect(await page.locator('html').getAttribute('lang')).toBe('pt-BR');
      await page.getByRole('heading', { name: 'Aplicativo do banco' }).waitFor();
      // The sign-in page too: outline, labels, contrast and axe (issue 18 point 7).
      await checkAccessible(page);
      await checkAxe(page);
      await page.getByLabel('Usuário').fill(alice.username);
      await page.getByLabel('Senha').fill(alice.password);
      await page.getByLabel(/Código de uso único do seu aplicativo/).fill(totpCode(alice.totpSecret, new Date()));
      await page.getByRole('button', { name: 'Entrar' }).click();
      const card = page.locator(`[data-request="${id}"]`);
      await card.getByRole('heading', { name: 'Test Fintech pede que você confirme um pagamento' }).waitFor();
      expect(await card.locator('.amount').textContent()).toMatch(/£\s?1\.234,50/);
      expect(await card.locator('.payee').textContent()).toBe('ACME Energy Ltd (agência (sort code) 08-08-00, conta 21325698)');
      await expect(card.innerText()).resolves.toMatch(/Aguardando até \d{1,2} de \p{L}+\.? de \d{4}, \d{2}:\d{2}:\d{2} BRT/u);
      await expect(card.innerText()).resolves.toContain('Motivo informado por Test Fintech\nPagar a sua conta de energia de dezembro');
      await checkAccessible(page);
      await checkAxe(page);
      await shoot(page, 'bank-app-pt-BR');
      await card.getByRole('button', { name: 'Aprovar' }).click();
      await page.getByText('Digite o código de uso único do seu aplicativo autenticador para aprovar.').waitFor();
      await page.locator(`[data-request="${id}"]`).getByRole('button', { name: 'Recusar' }).click();
      await page.getByText('Pedido recusado.').waitFor();
    } finally {
      await tab.close();
    }
  });

  it('refuses an approval without the one-time code, and the request stays pending; deny ends it', async () => {
    const id = await startRequest('Call ref 9');
    const tab = await tabs({ viewport: VIEWPORTS.phone });
    try {
      const { page } = tab;
      await signIn(page);
      const card = page.locator(`[data-request="${id}"]`);
      await card.getByRole('button', { name: 'Approve' }).click();
      await page.getByText('Enter the one-time code from your authenticator app to approve.').waitFor();
      await shoot(page, 'bank-app-code-missing');
      const pending = await oauth.backchannelAuthenticationGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), id, { [oauth.customFetch]: tpp.fetch });
      expect(await pending.json()).toMatchObject({ error: 'authorization_pending' });

      await page.locator(`[data-request="${id}"]`).getByRole('button', { name: 'Deny' }).click();
      await page.getByText('Request denied.').waitFor();
      expect((await h.moat.ciba!.authorisation.pendingFor('cust-alice')).map((r) => r.id)).not.toContain(id);
      offsetMs += 11_000;
      const denied = await oauth.backchannelAuthenticationGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), id, { [oauth.customFetch]: tpp.fetch });
      expect(await denied.json()).toMatchObject({ error: 'access_denied' });
    } finally {
      await tab.close();
    }
  });
});

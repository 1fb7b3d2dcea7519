import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import type { Page } from 'playwright-core';
import { useMoatWithBankIdp, type BankIdp } from '../support/bank-idp.ts';
import { chromiumAvailable, useChromium, useTabs, catchTppRedirect, type Tab } from '../support/chromium.ts';

// Runs in the browser (Moat's TypeScript has no DOM library).
declare const document: any;
import { redeem } from '../support/consents.ts';
import type { Harness } from '../support/moat-harness.ts';
import { checkAccessible, shoot, checkPageInLanguage } from '../support/page-checks.ts';
import { pushAuthorization, type RegisteredTpp } from '../support/tpp-client.ts';
import { addVirtualAuthenticator } from '../support/virtual-authenticator.ts';

/*
 * customers.source: oidc in a real browser (headless Chromium): the TPP's authorization sends the
 * customer through Moat to the bank's own sign-in page (a second oidc-provider, on 127.0.0.1 while
 * Moat is on localhost — two sites, with their own cookies), back to Moat's consent page showing the
 * name the bank gave, and on to the TPP with a code; and when the bank's sign-in is down, a page
 * that says so, whose retry link finishes the journey once it is back.
 */

const describeInBrowser = chromiumAvailable() ? describe : describe.skip;

let idp: BankIdp;
let h: Harness;
let tpp: RegisteredTpp;
const chromium = useChromium();
const tabs = useTabs(chromium);

useMoatWithBankIdp((started) => ({ idp, h, tpp } = started), { when: chromiumAvailable });

interface Journey extends Tab {
  callback: Promise<URL>;
}

async function openJourney(): Promise<Journey> {
  const tab = await tabs();
  const { callback } = await catchTppRedirect(tab.page, tpp.redirectUri);
  return { ...tab, callback };
}

async function signInAtBank(page: Page, username: string, password: string): Promise<void> {
  await page.getByRole('heading', { name: 'Sign in to your bank' }).waitFor();
  expect(new URL(page.url()).origin).toBe(idp.issuer);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

describeInBrowser('federated sign-in in a real browser', () => {
  it("goes to the bank's sign-in page, comes back to consent under the bank's name for the customer, and reaches the TPP with a code", async () => {
    const { page, callback, close } = await openJourney();
    try {
      const { requestUri, codeVerifier } = await pushAuthorization(tpp);
      await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      await signInAtBank(page, 'alice', 'alice-bank');
      await page.getByRole('heading', { name: /is asking for access/ }).waitFor();
      expect(new URL(page.url()).origin).toBe(h.issuer);
      await expect(page.getByText('Signed in as Alice B. Example').isVisible()).resolves.toBe(true);
      await checkAccessible(page);
      await shoot(page, 'federated-01-consent');
      await page.getByRole('button', { name: /^Share with / }).click();
      const back = await callback;
      const params = oauth.validateAuthResponse(tpp.as, tpp.client, back, oauth.skipStateCheck);
      const tokens = await redeem(tpp, { params, codeVerifier });
      expect(tokens.status).toBe(200);
      expect(decodeJwt(String(tokens.body.id_token)).sub).toBe('cust-alice');
    } finally {
      await close();
    }
  });

  it("shows the bank's sign-in as unavailable when it is down, and the retry link finishes the journey once it is back", async () => {
    const { page, callback, close } = await openJourney();
    try {
      const { requestUri } = await pushAuthorization(tpp);
      await idp.stop();
      await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      await page.getByRole('heading', { name: "Your bank's sign-in is unavailable" }).waitFor();
      await checkAccessible(page);
      await shoot(page, 'federated-02-unavailable');
      await idp.resume();
      await page.getByRole('link', { name: 'Try signing in again' }).click();
      await signInAtBank(page, 'alice', 'alice-bank');
      await page.getByRole('heading', { name: /is asking for access/ }).waitFor();
      await page.getByRole('button', { name: /^Share with / }).click();
      expect((await callback).searchParams.get('code')).toBeTruthy();
    } finally {
      await close();
    }
  });

  it('confirms a payment with a passkey set up in the dashboard after the bank sign-in, its challenge linked to the amount and payee (RTS Art. 5)', async () => {
    const { page, context, callback, close } = await openJourney();
    try {
      await addVirtualAuthenticator(context, page);
      // Set up under the id the bank's IdP gives the customer, after a strong sign-in there.
      await page.goto(`${h.issuer}/account/login`);
      await signInAtBank(page, 'alice', 'alice-bank');
      await page.waitForURL(`${h.issuer}/account/consents`);
      await page.goto(`${h.issuer}/account/passkeys`);
      await page.getByRole('button', { name: 'Add a passkey' }).click();
      await page.getByRole('status').filter({ hasText: 'Passkey added.' }).waitFor();

      const payment = JSON.stringify([
        {
          type: 'payment_initiation',
          instructedAmount: { amount: '12.34', currency: 'GBP' },
          creditorName: 'Corner Shop Ltd',
          creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223344556677' },
        },
      ]);
      const { requestUri, codeVerifier } = await pushAuthorization(tpp, { scope: 'openid payments', extraParams: { authorization_details: payment } });
      // The bank remembers her sign-in from the dashboard (its own session): straight back to Moat.
      await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      // Back at Moat: the amount and payee beside the passkey button (Art. 5(1)(a)).
      await page.getByRole('heading', { name: 'Confirm the payment with your passkey' }).waitFor();
      await expect(page.getByText('Corner Shop Ltd').isVisible()).resolves.toBe(true);
      await checkAccessible(page);
      await shoot(page, 'federated-04-payment-passkey');
      await page.getByRole('button', { name: 'Approve £12.34 with a passkey' }).click();
      await page.getByRole('heading', { name: 'Confirm payment of £12.34 to Corner Shop Ltd' }).waitFor();
      await page.getByRole('radio', { name: /Everyday current account/ }).check();
      await page.getByRole('button', { name: 'Confirm payment' }).click();
      const back = await callback;
      expect(back.searchParams.get('error')).toBeNull();
      const tokens = await redeem(tpp, { params: oauth.validateAuthResponse(tpp.as, tpp.client, back, oauth.skipStateCheck), codeVerifier });
      const idToken = decodeJwt(String(tokens.body.id_token));
      expect(idToken.sub).toBe('cust-alice');
      expect(idToken.acr).toBe('urn:openbanking:psd2:sca');
      // The bank's methods, then the passkey's (RFC 8176).
      expect(idToken.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'user', 'mfa']));
      const { rows } = await h.moat.storage.sql.query<{ sca_link: { creditorName: string; amount: string } }>(
        "SELECT sca_link FROM consent WHERE customer_id = $1 AND status = 'Authorised' AND sca_link IS NOT NULL",
        ['cust-alice'],
      );
      expect(rows.map((r) => r.sca_link)).toEqual([expect.objectContaining({ amount: '12.34', creditorName: 'Corner Shop Ltd' })]);
    } finally {
      await close();
    }
  });

  it('signs the customer in to the consent dashboard at the bank, and the dashboard keeps them signed in', async () => {
    const { page, close } = await openJourney();
    try {
      await page.goto(`${h.issuer}/account/login`);
      await signInAtBank(page, 'alice', 'alice-bank');
      // Back from the bank's site, the SameSite=Strict dashboard session must reach /account/consents.
      await page.waitForURL(`${h.issuer}/account/consents`);
      await page.getByText('Alice B. Example').first().waitFor();
      await shoot(page, 'federated-03-dashboard');
    } finally {
      await close();
    }
  });

  describe('in Brazilian Portuguese, when the TPP asks with ui_locales (issue 18 point 8)', () => {
    const checkPage = (page: Page, name: string) => checkPageInLanguage(page, name, 'pt-BR');

    it("says the bank's sign-in is unavailable, retries, and asks for consent in pt-BR after the bank's sign-in", async () => {
      const { page, callback, close } = await openJourney();
      try {
        const { requestUri } = await pushAuthorization(tpp, { extraParams: { ui_locales: 'pt-BR' } });
        await idp.stop();
        await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
        await page.getByRole('heading', { name: 'O acesso do seu banco está indisponível' }).waitFor();
        await checkPage(page, 'federated-unavailable-pt-BR');
        await idp.resume();
        await page.getByRole('link', { name: 'Tentar entrar de novo' }).click();
        await signInAtBank(page, 'alice', 'alice-bank');
        await page.getByRole('heading', { name: 'Test Fintech está pedindo acesso às suas informações' }).waitFor();
        await expect(page.locator('main').innerText()).resolves.toContain('Alice B. Example');
        await checkPage(page, 'federated-consent-pt-BR');
        await page.getByRole('checkbox').first().check();
        await page.getByRole('button', { name: 'Compartilhar com Test Fintech' }).click();
        expect((await callback).searchParams.get('code')).toBeTruthy();
      } finally {
        await close();
      }
    });

    it('asks for a stronger sign-in when the bank signed the customer in with one factor, and cancels back to the TPP', async () => {
      const { page, callback, close } = await openJourney();
      try {
        const { requestUri } = await pushAuthorization(tpp, { extraParams: { ui_locales: 'pt-BR' } });
        await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
        // bob's bank sign-in is a password alone (acr urn:bank:loa:low): not SCA.
        await signInAtBank(page, 'bob', 'bob-bank');
        await page.getByRole('heading', { name: 'É preciso um acesso mais forte' }).waitFor();
        await expect(page.getByRole('alert').textContent()).resolves.toContain('autenticação de dois fatores');
        await checkPage(page, 'federated-stronger-pt-BR');
        await page.getByRole('button', { name: /^Cancelar/ }).click();
        expect((await callback).searchParams.get('error')).toBeTruthy();
      } finally {
        await close();
      }
    });
  });
});

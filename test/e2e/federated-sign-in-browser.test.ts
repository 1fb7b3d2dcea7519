import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import type { BrowserContext, Page } from 'playwright-core';
import { useMoatWithBankIdp, type BankIdp } from '../support/bank-idp.ts';
import { chromiumAvailable, useChromium } from '../support/chromium.ts';
import { redeem } from '../support/consents.ts';
import type { Harness } from '../support/moat-harness.ts';
import { checkAccessible, shoot } from '../support/page-checks.ts';
import { pushAuthorization, type RegisteredTpp } from '../support/tpp-client.ts';

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

useMoatWithBankIdp((started) => ({ idp, h, tpp } = started), { when: chromiumAvailable });

interface Journey { context: BrowserContext; page: Page; callback: Promise<URL> }

async function openJourney(): Promise<Journey> {
  const context = await chromium().newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  let resolveCallback: (url: URL) => void;
  const callback = new Promise<URL>((resolve) => { resolveCallback = resolve; });
  await context.route(`${new URL(tpp.redirectUri).origin}/**`, async (route) => {
    resolveCallback(new URL(route.request().url()));
    await route.fulfill({ status: 200, contentType: 'text/html', body: '<title>TPP</title><p>Back at the TPP</p>' });
  });
  return { context, page, callback };
}

async function signInAtBank(page: Page, username: string, password: string): Promise<void> {
  await page.getByRole('heading', { name: 'Sign in to your bank' }).waitFor();
  expect(new URL(page.url()).origin).toBe(idp.issuer);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

describeInBrowser('federated sign-in in a real browser', () => {
  it('goes to the bank\'s sign-in page, comes back to consent under the bank\'s name for the customer, and reaches the TPP with a code', async () => {
    const { page, context, callback } = await openJourney();
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
      await context.close();
    }
  });

  it('shows the bank\'s sign-in as unavailable when it is down, and the retry link finishes the journey once it is back', async () => {
    const { page, context, callback } = await openJourney();
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
      await context.close();
    }
  });

  it('signs the customer in to the consent dashboard at the bank, and the dashboard keeps them signed in', async () => {
    const { page, context } = await openJourney();
    try {
      await page.goto(`${h.issuer}/account/login`);
      await signInAtBank(page, 'alice', 'alice-bank');
      // Back from the bank's site, the SameSite=Strict dashboard session must reach /account/consents.
      await page.waitForURL(`${h.issuer}/account/consents`);
      await page.getByText('Alice B. Example').first().waitFor();
      await shoot(page, 'federated-03-dashboard');
    } finally {
      await context.close();
    }
  });
});

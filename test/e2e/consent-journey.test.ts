import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';
import * as oauth from 'oauth4webapi';
import type { Page, Request } from 'playwright-core';
import type { Harness } from '../support/moat-harness.ts';
import { pushAuthorization, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import { introspect, redeem } from '../support/consents.ts';
import { chromiumAvailable, useChromium, useTabs, VIEWPORTS, catchTppRedirect, type Tab } from '../support/chromium.ts';
import { checkAccessible, shoot } from '../support/page-checks.ts';

/*
 * The customer's journey in a real browser (headless Chromium): sign in, choose accounts, narrow
 * what is shared, approve or deny; then the consent dashboard, where stopping a consent kills its
 * tokens. Every page is screenshotted at desktop and phone widths, checked for a keyboard-only
 * path, labelled inputs, contrast and no horizontal scrolling on a phone.
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

const ACCOUNT_INFORMATION = JSON.stringify([
  {
    type: 'account_information',
    permissions: ['ReadAccountsDetail', 'ReadBalances', 'ReadTransactionsDetail', 'ReadTransactionsCredits', 'ReadTransactionsDebits', 'ReadParty'],
    expirationDateTime: '2031-06-30T00:00:00Z',
  },
]);

interface Journey extends Tab {
  visited: string[];
  callback: Promise<URL>;
}

/** A cleared browser tab; the code is read from the request to the TPP's redirect_uri. */
async function openJourney(viewport: keyof typeof VIEWPORTS = 'desktop'): Promise<Journey> {
  const tab = await tabs({ viewport: VIEWPORTS[viewport] });
  const visited: string[] = [];
  const record = (req: Request) => visited.push(req.url());
  tab.page.on('request', record);
  const { callback } = await catchTppRedirect(tab.page, tpp.redirectUri);
  const close = async () => {
    tab.page.off('request', record);
    await tab.close();
  };
  return { ...tab, visited, callback, close };
}

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Password').press('Enter');
  const customer = SANDBOX_CUSTOMERS.find((c) => c.username === username);
  if (customer === undefined || password !== customer.password) return;
  // The second factor (RTS on SCA Art. 4), typed as a customer reads it off an authenticator app.
  const code = page.getByLabel(/6-digit code/);
  await code.waitFor();
  await code.fill(totpCode(customer.totpSecret, new Date()));
  await code.press('Enter');
}

describeInBrowser('the customer in a real browser', () => {
  it('signs in, chooses accounts, narrows what is shared, approves — and the token carries exactly that', async () => {
    const journey = await openJourney();
    const { page } = journey;
    try {
      const { requestUri, codeVerifier } = await pushAuthorization(tpp, {
        scope: 'openid accounts',
        extraParams: { authorization_details: ACCOUNT_INFORMATION },
      });
      await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      await expect(page.getByRole('heading', { name: 'Sign in to continue' }).isVisible()).resolves.toBe(true);
      await checkAccessible(page);
      await shoot(page, '01-login');

      // Keyboard only: the focus order is username, password, the sign-in button.
      await page.getByLabel('Username').focus();
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('password');
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Sign in');

      await signIn(page, 'alice', 'wrong-password');
      await expect(page.getByRole('alert').textContent()).resolves.toContain('The username or password is incorrect.');
      await shoot(page, '02-login-error');
      await signIn(page, 'alice', 'alice-sandbox');

      await page.getByRole('heading', { name: 'Test Fintech is asking for access to your information' }).waitFor();
      await checkAccessible(page);
      await shoot(page, '03-consent-account-access');
      // Approving with nothing selected is refused on the page, not sent to the TPP.
      await page.getByRole('button', { name: 'Share with Test Fintech' }).click();
      await expect(page.getByRole('alert').textContent()).resolves.toContain('Choose at least one account to share.');
      await shoot(page, '04-consent-error');

      await page.getByLabel(/Rainy day saver/).check();
      await page.getByLabel(/Your contact and party details/).uncheck();
      await page.getByRole('button', { name: 'Share with Test Fintech' }).click();
      const callback = await journey.callback;
      expect(callback.searchParams.get('error')).toBeNull();

      const { body: tokens } = await redeem(tpp, { params: oauth.validateAuthResponse(tpp.as, tpp.client, callback, oauth.skipStateCheck), codeVerifier });
      expect(tokens.authorization_details[0].accounts.map((a: { accountId: string }) => a.accountId)).toEqual(['acc-alice-savings']);
      expect(tokens.authorization_details[0].permissions).not.toContain('ReadParty');
      // No customer data or credential ever travels in a URL Moat serves.
      const moatUrls = journey.visited.filter((u) => u.startsWith(h.issuer));
      expect(moatUrls.filter((u) => /alice|password|acc-alice|4000/i.test(u))).toEqual([]);
    } finally {
      await journey.close();
    }
  });

  it("shows a payment's amount, payee and reference on a phone, and a denial returns access_denied", async () => {
    const journey = await openJourney('phone');
    const { page } = journey;
    try {
      const { requestUri } = await pushAuthorization(tpp, {
        scope: 'openid payments',
        extraParams: {
          authorization_details: JSON.stringify([
            {
              type: 'payment_initiation',
              instructedAmount: { amount: '249.99', currency: 'GBP' },
              creditorName: 'Green Energy Co',
              creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '20003012345678' },
              remittanceInformation: { reference: 'ACCT 5531' },
            },
          ]),
        },
      });
      await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      await signIn(page, 'alice', 'alice-sandbox');
      await page.getByRole('heading', { name: 'Confirm payment of £249.99 to Green Energy Co' }).waitFor();
      expect(await page.locator('dd.amount').textContent()).toBe('£249.99');
      await expect(page.locator('dl.payment').getByText('Green Energy Co').isVisible()).resolves.toBe(true);
      await expect(page.getByText('ACCT 5531').isVisible()).resolves.toBe(true);
      await checkAccessible(page);
      await shoot(page, '05-consent-payment');
      await page.getByRole('button', { name: 'Cancel payment' }).click();
      const callback = await journey.callback;
      expect(callback.searchParams.get('error')).toBe('access_denied');
    } finally {
      await journey.close();
    }
  });

  it('stops a consent from the dashboard with one confirmation, and its token introspects inactive', async () => {
    const approve = await openJourney();
    let accessToken: string;
    try {
      const { requestUri, codeVerifier } = await pushAuthorization(tpp, { extraParams: { authorization_details: ACCOUNT_INFORMATION } });
      await approve.page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      await signIn(approve.page, 'bob', 'bob-sandbox');
      await approve.page.getByRole('button', { name: 'Share with Test Fintech' }).click();
      const callback = await approve.callback;
      accessToken = (await redeem(tpp, { params: oauth.validateAuthResponse(tpp.as, tpp.client, callback, oauth.skipStateCheck), codeVerifier })).body
        .access_token as string;
    } finally {
      await approve.close();
    }
    expect((await introspect(tpp, accessToken)).active).toBe(true);

    const journey = await openJourney();
    const { page } = journey;
    try {
      await page.goto(`${h.issuer}/account`);
      await page.getByRole('heading', { name: 'Connected apps' }).waitFor();
      await shoot(page, '06-dashboard-login');
      await signIn(page, 'bob', 'bob-sandbox');
      await page.getByRole('heading', { name: 'Active', exact: true }).waitFor();
      await checkAccessible(page);
      await shoot(page, '07-dashboard');
      await page.getByRole('link', { name: 'Stop sharing with Test Fintech' }).first().click();
      await page.getByRole('heading', { name: 'Stop sharing with Test Fintech?' }).waitFor();
      await checkAccessible(page);
      await shoot(page, '08-revoke-confirm');
      await page.getByRole('button', { name: 'Yes, stop sharing' }).click();
      await page.getByRole('status').waitFor();
      await shoot(page, '09-dashboard-after-revoke');
      expect((await introspect(tpp, accessToken)).active).toBe(false);
    } finally {
      await journey.close();
    }
  });
});

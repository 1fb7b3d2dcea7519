import { mkdirSync } from 'node:fs';
import type { Browser as Chromium } from 'playwright-core';
import { bankAccounts, startAccountService, type TestAccountService } from '../support/account-service.ts';
import { chromiumAvailable, launchChromium, SCREENSHOT_DIR, VIEWPORTS, catchTppRedirect } from '../support/chromium.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { checkAccessible, shoot } from '../support/page-checks.ts';
import { totpCode } from '../../src/sca/totp.ts';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { onboardTpp, pushAuthorization, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * The bank's account service failing, as the customer sees it in a real browser (issue 17 point 2):
 * a clear page — accessible, usable on a phone — then "Try again" once the service is back, and the
 * consent goes through.
 */

const describeInBrowser = chromiumAvailable() ? describe : describe.skip;

let service: TestAccountService;
let h: Harness;
let tpp: RegisteredTpp;
let chromium: Chromium;
beforeAll(async () => {
  if (!chromiumAvailable()) return;
  service = await startAccountService({ accounts: bankAccounts() });
  h = await startMoat({
    config: {
      accounts: { source: 'http', http: { url: service.url, ...service.files, retries: 0, circuitBreaker: { failureThreshold: 1000, openSeconds: 30 } } },
    },
  });
  tpp = await onboardTpp(h);
  chromium = await launchChromium();
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
});
afterAll(async () => {
  await chromium?.close();
  await tpp?.close();
  await h?.close();
  await service?.close();
});

describeInBrowser('accounts that cannot be shown, in a real browser', () => {
  it('tells the customer, lets them try again once the service is back, and the consent goes through', async () => {
    const context = await chromium.newContext({ viewport: VIEWPORTS.desktop, ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const { callback } = await catchTppRedirect(page, tpp.redirectUri);
    try {
      const { requestUri } = await pushAuthorization(tpp, { scope: 'openid accounts' });
      await page.goto(`${h.issuer}/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      service.behaviour = 'error';
      await page.getByLabel('Username').fill('alice');
      await page.getByLabel('Password').fill('alice-sandbox');
      await page.getByLabel('Password').press('Enter');
      // The second factor (RTS on SCA Art. 4), as read off an authenticator app.
      const code = page.getByLabel(/6-digit code/);
      await code.waitFor();
      await code.fill(totpCode(SANDBOX_CUSTOMERS.find((c) => c.username === 'alice')!.totpSecret, new Date()));
      await code.press('Enter');
      await page.getByRole('heading', { name: 'Your accounts cannot be shown right now' }).waitFor();
      await checkAccessible(page);
      await shoot(page, 'accounts-unavailable');

      service.behaviour = 'good';
      await page.getByRole('link', { name: 'Try again' }).click();
      await page.getByText('Bills account').waitFor();
      await page.getByRole('button', { name: 'Share with Test Fintech' }).click();
      expect((await callback).searchParams.get('code')).toBeTruthy();
    } finally {
      await context.close();
    }
  });
});

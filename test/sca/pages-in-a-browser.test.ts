import { totpCode } from '../../src/sca/totp.ts';
import { chromiumAvailable, useChromium } from '../support/chromium.ts';
import type { Harness } from '../support/moat-harness.ts';
import { checkAccessible, shoot } from '../support/page-checks.ts';
import { useMoatWithTpp } from '../support/tpp-client.ts';

/*
 * The SCA pages in real Chromium with JavaScript switched off (issue 16 §7: the one-time-code path
 * works without JavaScript), driven by the keyboard alone: labelled fields, contrast, phone width.
 */

declare const document: { activeElement: { id?: string } | null };

const describeInBrowser = chromiumAvailable() ? describe : describe.skip;

let h: Harness;
useMoatWithTpp((started) => {
  h = started.h;
});

const chromium = useChromium();

describeInBrowser('the one-time-code pages without JavaScript', () => {
  it('set up an authenticator app at /account/security by keyboard', async () => {
    const context = await chromium().newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
    const page = await context.newPage();
    try {
      await h.moat.storage.sql.query('DELETE FROM customer_totp WHERE customer_id = $1', ['cust-bob']);
      await page.goto(`${h.issuer}/account/login`);
      await page.getByLabel('Username').fill('bob');
      await page.getByLabel('Password').fill('bob-sandbox');
      await page.getByLabel('Password').press('Enter');
      await page.getByRole('link', { name: 'Sign-in security' }).focus();
      await page.keyboard.press('Enter');
      await page.getByRole('button', { name: 'Set up an authenticator app' }).focus();
      await page.keyboard.press('Enter');
      const secret = (await page.locator('#totp-secret').textContent())!;
      await checkAccessible(page);
      await shoot(page, 'sca-03-enrol');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('code');
      await page.locator('#code').focus();
      await page.keyboard.type(totpCode(secret, new Date()));
      await page.keyboard.press('Enter');
      await page.getByRole('status').waitFor();
      expect(await page.getByRole('status').textContent()).toContain('Your authenticator app is set up');
      await checkAccessible(page);
    } finally {
      await context.close();
    }
  });
});

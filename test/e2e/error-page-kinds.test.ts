import { randomUUID } from 'node:crypto';
import { createViews } from '../../src/interactions/views.ts';
import { chromiumAvailable, useChromium, useTabs } from '../support/chromium.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { checkAccessible, checkAxe, checkTargetsAndFocus, shoot } from '../support/page-checks.ts';

/*
 * The error page kinds a browser test cannot provoke against a healthy Moat — an outage
 * (`unavailable`) and an unexpected failure (`other`) — in both languages (issue 18 Tests, point 8):
 * the page Moat's own views render for each, served at Moat's address with its stylesheets, checked
 * and photographed as the reachable kinds are in customer-pages.test.ts. This checks the page, not
 * the path to it: which errors become which kind is tested in test/kernel/error-responses.test.ts.
 */

// Runs in the browser (Moat's TypeScript has no DOM library).
declare const document: any;

const describeInBrowser = chromiumAvailable() ? describe : describe.skip;
const chromium = useChromium();
const tabs = useTabs(chromium);

let h: Harness;
beforeAll(async () => {
  if (chromiumAvailable()) h = await startMoat();
});
afterAll(async () => {
  await h?.close();
});

describeInBrowser('the error pages no browser journey reaches, in both languages', () => {
  it.each([
    ['unavailable', 'en', 'Our service is briefly unavailable', /Try again in a few minutes\./, 'Support reference:'],
    ['unavailable', 'pt-BR', 'Nosso serviço está temporariamente indisponível', /Tente de novo em alguns minutos\./, 'Referência para o atendimento:'],
    ['other', 'en', 'Something went wrong', /Go back to the app you came from and try again\./, 'Support reference:'],
    ['other', 'pt-BR', 'Algo deu errado', /Volte para o aplicativo de onde você veio e tente de novo\./, 'Referência para o atendimento:'],
  ])('the %s page in %s', async (kind, locale, title, says, reference) => {
    const views = createViews({ branding: h.config.branding, scopes: h.config.scopes, sandbox: true });
    const html = views.render('error', { kind, interactionId: randomUUID() }, locale);
    const tab = await tabs();
    const { page } = tab;
    try {
      const address = `${h.issuer}/error-page-preview/${kind}`;
      await page.route(address, (route) => route.fulfill({ status: kind === 'unavailable' ? 503 : 500, contentType: 'text/html; charset=utf-8', body: html }));
      await page.goto(address);
      await page.getByRole('heading', { name: title, level: 1 }).waitFor();
      expect(await page.evaluate(() => document.documentElement.lang)).toBe(locale);
      const text = await page.locator('main').innerText();
      expect(text).toMatch(says);
      expect(text).toContain(reference);
      // The bank's stylesheet applied: the page is Moat's, not bare markup.
      expect(await page.evaluate(() => getComputedStyle(document.querySelector('header.bank')).backgroundColor)).toBe('rgb(11, 61, 92)');
      await checkAccessible(page);
      await checkAxe(page);
      await checkTargetsAndFocus(page);
      await shoot(page, `customer-error-${kind}-${locale}`);
    } finally {
      await tab.close();
    }
  });
});

declare function getComputedStyle(element: any): any;

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { Browser, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * The bank's branding from configuration on every customer page: name, logo and colours.
 */

let h: Harness;
let tpp: RegisteredTpp;
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-brand-'));
  const logo = join(dir, 'logo.svg');
  writeFileSync(logo, '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#5b2a86"/></svg>');
  h = await startMoat({ config: { branding: { bankName: 'Northwind Bank', logoFile: logo, primaryColor: '#5b2a86', primaryTextColor: '#ffffff' } } });
  tpp = await onboardTpp(h);
});
afterAll(async () => {
  await tpp.close();
  await h.close();
});

it('names the bank, shows its logo and uses its colours', async () => {
  const browser = new Browser(h, tpp.creds.serverCaPem);
  try {
    const page = await (await browser.request('/account/login')).text();
    expect(page).toContain('<title>Sign in to manage connected apps · Northwind Bank</title>');
    expect(page).toContain('<img class="logo" src="/assets/logo" alt="Northwind Bank">');
    const css = await browser.request('/assets/brand.css');
    expect(await css.text()).toBe(':root { --brand: #5b2a86; --brand-text: #ffffff; }\n');
    const logo = await browser.request('/assets/logo');
    expect(logo.headers.get('content-type')).toBe('image/svg+xml');
    // An SVG opened directly runs no script on Moat's origin.
    expect(logo.headers.get('content-security-policy')).toContain('sandbox');
  } finally {
    await browser.close();
  }
});

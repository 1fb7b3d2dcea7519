import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { Browser, hiddenField, onboardTpp, pushAuthorization, signInAtInteraction, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * The bank's branding from configuration on every customer page: name, logo and colours; and the
 * texts it writes for customers (its name, how to contact it, what a scope lets a TPP do) in the
 * customer's language when it writes them by language (issue 18 point 8).
 */

let h: Harness;
let tpp: RegisteredTpp;
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-brand-'));
  const logo = join(dir, 'logo.svg');
  writeFileSync(logo, '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#5b2a86"/></svg>');
  h = await startMoat({
    config: {
      branding: {
        bankName: { default: 'Northwind Bank', 'pt-BR': 'Banco Northwind' },
        logoFile: logo,
        primaryColor: '#5b2a86',
        primaryTextColor: '#ffffff',
        contact: { default: '0800 123 4567 (weekdays, 8am to 8pm)', pt: '0800 123 4567 (dias úteis, das 8h às 20h)' },
      },
      scopes: {
        accounts: { description: 'Read account information', roles: ['AISP'] },
        payments: { description: 'Initiate payments', roles: ['PISP'] },
        fundsconfirmations: {
          description: { default: 'Check you have the money for a payment', 'pt-BR': 'Verificar se você tem saldo para um pagamento' },
          roles: ['CBPII'],
        },
      },
    },
  });
  tpp = await onboardTpp(h, { roles: ['CBPII'] });
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

describe("the bank's own texts in the customer's language (issue 18 point 8)", () => {
  it("says the bank's name and contact in Brazilian Portuguese on a pt-BR page, and the default on an English one", async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const english = await (await browser.request('/interaction/no-such-interaction', { headers: { 'accept-language': 'en' } })).text();
      expect(english).toContain('<strong>0800 123 4567 (weekdays, 8am to 8pm)</strong>');
      expect(english).toMatch(/<title>[^<]* · Northwind Bank<\/title>/);
      // The pt entry serves a pt-BR page (by language), as a catalogue's would.
      const portuguese = await (await browser.request('/interaction/no-such-interaction', { headers: { 'accept-language': 'pt-BR' } })).text();
      expect(portuguese).toContain('<strong>0800 123 4567 (dias úteis, das 8h às 20h)</strong>');
      expect(portuguese).toMatch(/<title>[^<]* · Banco Northwind<\/title>/);
      expect(portuguese).toContain('alt="Banco Northwind"');
      expect(portuguese).not.toContain('weekdays');
    } finally {
      await browser.close();
    }
  });

  it.each([
    ['en', 'Check you have the money for a payment', 'Verificar'],
    ['pt-BR', 'Verificar se você tem saldo para um pagamento', 'Check you have'],
  ])("describes a scope on the consent screen in the authorization's language (%s)", async (locale, shown, notShown) => {
    const { requestUri } = await pushAuthorization(tpp, { scope: 'openid fundsconfirmations', extraParams: { ui_locales: locale } });
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
      const consent = await signInAtInteraction(browser, uid, hiddenField(await start.res.text(), 'csrf'));
      const page = await consent.res.text();
      expect(page).toContain(`<li>${shown}</li>`);
      expect(page).not.toContain(notShown);
    } finally {
      await browser.close();
    }
  });
});

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCatalogues, REFERENCE_LOCALE } from '../../src/interactions/messages.ts';
import { configSchema } from '../../src/config/schema.ts';
import { problemsOf } from '../support/config-problems.ts';
import { createViews, VIEWS_DIR } from '../../src/interactions/views.ts';

/*
 * The customer pages' message catalogues (issue 18 point 8): English and Brazilian Portuguese ship
 * complete, a language is added by adding a file, and a catalogue with a missing key is refused.
 */

const LOCALES = join(VIEWS_DIR, 'locales');
const reference = JSON.parse(readFileSync(join(LOCALES, `${REFERENCE_LOCALE}.json`), 'utf8')) as Record<string, string>;

function catalogueDir(files: Record<string, Record<string, string>>): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-locales-'));
  for (const [name, messages] of Object.entries(files)) writeFileSync(join(dir, `${name}.json`), JSON.stringify(messages));
  return dir;
}

describe('message catalogues', () => {
  it('ships English and Brazilian Portuguese, each with every key of the English catalogue', () => {
    const catalogues = loadCatalogues(LOCALES);
    expect(catalogues.locales).toEqual(expect.arrayContaining(['en', 'pt-BR']));
    const pt = catalogues.translator('pt-BR');
    for (const key of Object.keys(reference)) expect(pt(key)).not.toBe('');
    expect(pt('decision.share', { client: 'Acme' })).toBe('Compartilhar com Acme');
  });

  it('refuses a catalogue with a missing key, naming the file and the key', () => {
    const { 'decision.share': _dropped, ...incomplete } = reference;
    expect(() => loadCatalogues(catalogueDir({ en: reference, 'fr-FR': incomplete }))).toThrow('views/locales/fr-FR.json: missing decision.share');
  });

  it('refuses a catalogue with a key English does not have', () => {
    expect(() => loadCatalogues(catalogueDir({ en: reference, de: { ...reference, 'made.up': 'x' } }))).toThrow(
      'views/locales/de.json: not in en.json: made.up',
    );
  });

  it('adds a language by adding a file', () => {
    const catalogues = loadCatalogues(catalogueDir({ en: reference, cy: { ...reference, 'decision.dontShare': 'Peidiwch â rhannu' } }));
    expect(catalogues.negotiate('cy', undefined)).toBe('cy');
    expect(catalogues.translator('cy')('decision.dontShare')).toBe('Peidiwch â rhannu');
  });

  it('throws on a key no catalogue has, so a template typo fails the page tests', () => {
    expect(() => loadCatalogues(LOCALES).translator('en')('no.such.key')).toThrow('no message no.such.key');
  });

  it('says a number of minutes with its unit and the plural of the language ({minutes:minute}, Intl)', () => {
    const catalogues = loadCatalogues(LOCALES);
    expect(catalogues.translator('en')('code.locked', { minutes: 1 })).toContain('Try again in 1 minute,');
    expect(catalogues.translator('en')('code.locked', { minutes: 5 })).toContain('Try again in 5 minutes,');
    expect(catalogues.translator('pt-BR')('signIn.locked.network', { minutes: 1 })).toBe(
      'Muitas tentativas de acesso a partir da sua rede. Tente de novo em 1 minuto.',
    );
    expect(catalogues.translator('pt-BR')('signIn.locked.network', { minutes: 15 })).toContain('em 15 minutos.');
  });

  describe('choosing the language (OIDC Core §3.1.2.1 ui_locales, RFC 9110 §12.5.4 Accept-Language)', () => {
    const catalogues = loadCatalogues(LOCALES);
    it.each([
      ['pt-BR en', 'en-GB', 'pt-BR'],
      ['fr pt', undefined, 'pt-BR'],
      [undefined, 'fr-FR, pt-BR;q=0.8, en;q=0.5', 'pt-BR'],
      [undefined, 'en;q=0.4, pt;q=0.9', 'pt-BR'],
      [undefined, 'pt-BR;q=0, en-US', 'en'],
      ['de', 'fr', 'en'],
      [undefined, undefined, 'en'],
    ])('ui_locales %p with Accept-Language %p gives %p', (ui, accept, expected) => {
      expect(catalogues.negotiate(ui, accept)).toBe(expected);
    });
  });

  it("refuses at start a bank's text in a language no page is in, naming its key (issue 18 point 8)", () => {
    const config = configSchema.parse({
      branding: { paymentCharges: { default: 'No charge', fr: 'Sans frais', pt: 'Sem tarifa' } },
      scopes: { loans: { description: { default: 'Read your loans', 'de-DE': 'Ihre Kredite lesen', 'en-US': 'Read your loans' }, roles: ['AISP'] } },
    });
    expect(problemsOf(() => createViews({ branding: config.branding, scopes: config.scopes, sandbox: false }))).toEqual([
      'branding.paymentCharges.fr: no customer page is in this language (views/locales has en, pt-BR)',
      'scopes.loans.description.de-DE: no customer page is in this language (views/locales has en, pt-BR)',
    ]);
    const fine = configSchema.parse({ branding: { paymentCharges: { default: 'No charge', 'pt-BR': 'Sem tarifa' } } });
    expect(() => createViews({ branding: fine.branding, scopes: fine.scopes, sandbox: false })).not.toThrow();
  });
});

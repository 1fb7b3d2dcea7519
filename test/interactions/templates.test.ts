import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DECOUPLED_REFUSAL_STATUS as REFUSAL_STATUS } from '../../src/kernel/error-responses.ts';
import { REFERENCE_LOCALE } from '../../src/interactions/messages.ts';
import { VIEWS_DIR } from '../../src/interactions/views.ts';
import { PASSKEY_REFUSALS } from '../../src/passkeys/passkey-ceremonies.ts';

/*
 * Issue 18 point 8: every customer-facing string in the message catalogue, none in a template. Each
 * template is read as text: what it shows outside its Eta tags has no words, its attributes that a
 * person reads (alt, title, aria-label, placeholder) have none either, its code writes no sentence of
 * its own, and every key it names — like every key the TypeScript names — is in the catalogue.
 * The developer portal's pages (portal, portal-call) are for TPP developers, in English, and are
 * not checked.
 */

const DEVELOPER_PAGES = new Set(['portal.eta', 'portal-call.eta']);
const templates = readdirSync(VIEWS_DIR)
  .filter((f) => f.endsWith('.eta') && !DEVELOPER_PAGES.has(f))
  .sort();
const catalogue = JSON.parse(readFileSync(join(VIEWS_DIR, 'locales', `${REFERENCE_LOCALE}.json`), 'utf8')) as Record<string, string>;
const source = (file: string) => readFileSync(join(VIEWS_DIR, file), 'utf8');
const WORD = /\p{L}{2,}/u;

/** The template with its Eta tags (code, output, comments) replaced by a mark. */
const markup = (text: string) => text.replace(/<%[\s\S]*?%>/g, '\u0000');
/** The code inside the template's Eta tags. */
const code = (text: string) => [...text.matchAll(/<%(?!\/\*)[=~]?([\s\S]*?)%>/g)].map((m) => m[1]!);

/** A string literal in template code that is a sentence or a word shown, not a key, a path, a class or a status compared. */
function wordsInCode(js: string): string[] {
  const found: string[] = [];
  for (const m of js.matchAll(/(===|!==|\bt\(|include\(|layout\()?\s*(['"`])((?:\\.|(?!\2).)*)\2/g)) {
    const [, before, , literal = ''] = m;
    if (before !== undefined) continue;
    // Keys, paths, ids, class names, enum values: no space, nothing capitalised.
    if (/^[\w./:#-]*$/.test(literal) && !/^\p{Lu}/u.test(literal)) continue;
    // Attributes no person reads (aria-invalid="true"…); alt, title, aria-label and placeholder are read.
    if (/^(\s*[\w-]+="[^"]*")+\s*$/.test(literal) && !/\b(alt|title|aria-label|placeholder)=/.test(literal)) continue;
    if (!WORD.test(literal)) continue;
    found.push(literal);
  }
  return found;
}

describe('customer page templates say nothing of their own (issue 18 point 8)', () => {
  it('checks every customer template there is', () => {
    expect(templates).toEqual(expect.arrayContaining(['consent.eta', 'login.eta', 'totp.eta', 'dashboard-login.eta', 'bank-app.eta', 'federated-sign-in.eta']));
  });

  it.each(templates)('%s shows no text outside the catalogue', (file) => {
    const html = markup(source(file))
      // An attribute whose whole value is written by code (a partial's data-passkey-messages).
      .replace(/[\w-]+="\u0000"/g, '')
      .replace(/<!--[\s\S]*?-->/g, '')
      .replace(/<style[\s\S]*?<\/style>/g, '');
    const readAttributes = [...html.matchAll(/\s(alt|title|aria-label|placeholder)="([^"]*)"/g)]
      .map((m) => `${m[1]}="${m[2]}"`)
      .filter((a) => WORD.test(a.split('=')[1]!));
    const text = html
      .replace(/<[^>]*>/g, ' ')
      .replace(/&[a-z]+;|&#\d+;/g, ' ')
      .split(/\s+/)
      .filter((w) => WORD.test(w));
    expect({ text, readAttributes }).toEqual({ text: [], readAttributes: [] });
  });

  it.each(templates)('%s writes no sentence in its code', (file) => {
    expect(code(source(file)).flatMap(wordsInCode)).toEqual([]);
  });

  it.each(templates)('%s names only keys the catalogue has', (file) => {
    const keys = code(source(file)).flatMap((js) => [...js.matchAll(/\bt\(\s*'([^']+)'\s*[,)]/g)].map((m) => m[1]!));
    expect(keys.filter((k) => !(k in catalogue))).toEqual([]);
  });

  it('finds words where a template has them (the scan can fail)', () => {
    expect(
      markup('<h1>Bank app</h1><% if (x) { %><p>ok</p><% } %>')
        .replace(/<[^>]*>/g, ' ')
        .split(/\s+/)
        .filter((w) => WORD.test(w)),
    ).toEqual(['Bank', 'app', 'ok']);
    expect(wordsInCode(" layout('./layout', { title: 'Bank app' }) ")).toEqual(['Bank app']);
    expect(wordsInCode(" it.lastUsedOn || 'Never' ")).toEqual(['Never']);
    expect(wordsInCode(" it.c.status === 'Rejected' ? t('card.askedOn') : 'h4' ")).toEqual([]);
  });
});

describe('keys the code names are in the catalogue', () => {
  const src = join(VIEWS_DIR, '..', 'src');
  const files = (readdirSync(src, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
  const named = new Set<string>();
  for (const file of files) {
    const text = readFileSync(join(src, file), 'utf8');
    // Only modules that speak to customers: they name the catalogue (messages.ts) or the error pages.
    if (!/(messages|render-error)\.ts'/.test(text) && !file.endsWith('messages.ts')) continue;
    for (const m of text.matchAll(/\bt\(\s*'([a-zA-Z][\w.-]*)'/g)) named.add(m[1]!);
    for (const m of text.matchAll(/\b(?:messageKey|labelKey|key|notice): '([a-zA-Z][\w.-]*\.[\w.-]+)'/g)) named.add(m[1]!);
  }

  it('has every literal key a route, a page or a refusal names', () => {
    expect(named.size).toBeGreaterThan(20);
    expect([...named].filter((k) => !(k in catalogue))).toEqual([]);
  });

  it('words every refusal a page says by its code', () => {
    const dynamic = [
      ...PASSKEY_REFUSALS.map((c) => `passkey.refused.${c}`),
      ...Object.keys(REFUSAL_STATUS).map((c) => `bankApp.refused.${c}`),
      ...['below_sca', 'payment_link', 'not_fresh', 'notSca', 'usedLink', 'unavailable', 'oneMoreStep', 'signedIn'].flatMap((p) => [
        `federated.${p}.heading`,
        `federated.${p}.message`,
      ]),
      ...['removed', 'enrolled'].map((d) => `security.done.${d}`),
      ...['added', 'removed'].map((d) => `passkeys.done.${d}`),
      ...['unknown_account', 'choose_one', 'choose_account', 'keep_group'].map((c) => `choice.${c}`),
    ];
    expect(dynamic.filter((k) => !(k in catalogue))).toEqual([]);
  });
});

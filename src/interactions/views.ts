import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { Eta } from 'eta';
import { ConfigError } from '../config/load.ts';
import { languagesOf, textIn, type LocalisedText } from '../config/localised-text.ts';
import type { MoatConfig } from '../config/schema.ts';
import { createPasskeyScript, type PasskeyScript } from '../passkeys/passkey-script.ts';
import { loadCatalogues, REFERENCE_LOCALE, type Catalogues } from './messages.ts';

/** The top-level views/ folder: server-rendered pages, escaped by default (`<%= %>`). */
export const VIEWS_DIR = join(import.meta.dirname, '..', '..', 'views');

export type ViewName =
  | 'login'
  | 'totp'
  | 'consent'
  | 'accounts-unavailable'
  | 'error'
  | 'federated-sign-in'
  | 'dashboard-login'
  | 'dashboard-code'
  | 'dashboard-security'
  | 'dashboard'
  | 'revoke-confirm'
  | 'dashboard-passkeys'
  | 'portal'
  | 'portal-call'
  | 'bank-app';

export interface Views {
  /** The page in `locale` (a catalogue's tag; English when omitted): its words come from views/locales. */
  render(name: ViewName, data: Record<string, unknown>, locale?: string): string;
  /** The message catalogues and the language negotiation (messages.ts). */
  catalogues: Catalogues;
  /** The bank's time zone (branding.timeZone): pages say dates and times in it, in the page's locale. */
  timeZone: string;
  /** The stylesheet, served from /assets/moat.css (CSP allows only same-origin styles). */
  stylesheet: string;
  /** The bank's colours as CSS custom properties, served from /assets/brand.css. */
  brandStylesheet: string;
  /** The passkey pages' script, served from its path; pages load it with a nonce and its SRI hash. */
  passkeyScript: PasskeyScript;
  /** The time-limit warning on interaction pages (WCAG 2.2.1), served and loaded like the passkey script. */
  sessionTimerScript: PasskeyScript;
  /** The bank's logo, served from /assets/logo, when configured. */
  logo?: { body: Buffer; type: string };
}

export const SESSION_TIMER_SCRIPT_PATH = '/assets/session-timer.js';

/** A script from views/assets with its SRI hash (SRI §3.3), for pages that load it with a CSP nonce. */
function assetScript(path: string, file: string): PasskeyScript {
  const body = readFileSync(file, 'utf8');
  return { path, body, integrity: `sha384-${createHash('sha384').update(body, 'utf8').digest('base64')}` };
}

const LOGO_TYPES: Record<string, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.svg': 'image/svg+xml' };

export function createViews(options: { branding: MoatConfig['branding']; scopes?: MoatConfig['scopes']; sandbox: boolean }): Views {
  const { branding } = options;
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true });
  let logo: Views['logo'];
  if (branding.logoFile !== undefined) {
    try {
      logo = { body: readFileSync(branding.logoFile), type: LOGO_TYPES[extname(branding.logoFile).toLowerCase()]! };
    } catch (err) {
      throw new Error(`branding.logoFile: cannot read ${branding.logoFile} (${(err as Error).message})`);
    }
  }
  const catalogues = loadCatalogues(join(VIEWS_DIR, 'locales'));
  const problems = bankTextProblems(options, catalogues);
  if (problems.length > 0) throw new ConfigError('the languages of views/locales', problems);
  const common = { sandbox: options.sandbox, hasLogo: logo !== undefined };
  return {
    // The bank's own texts in the page's language (config/localised-text.ts).
    render: (name, data, locale = REFERENCE_LOCALE) =>
      eta.render(`./${name}`, {
        ...common,
        bankName: textIn(branding.bankName, locale),
        bankContact: textIn(branding.contact, locale),
        lang: locale,
        t: catalogues.translator(locale),
        ...data,
      }),
    catalogues,
    timeZone: branding.timeZone,
    stylesheet: readFileSync(join(VIEWS_DIR, 'assets', 'moat.css'), 'utf8'),
    passkeyScript: createPasskeyScript(VIEWS_DIR),
    sessionTimerScript: assetScript(SESSION_TIMER_SCRIPT_PATH, join(VIEWS_DIR, 'assets', 'session-timer.js')),
    // Colours were validated as #rrggbb at start-up, so they are safe to write into CSS.
    brandStylesheet: `:root { --brand: ${branding.primaryColor}; --brand-text: ${branding.primaryTextColor}; }\n`,
    ...(logo === undefined ? {} : { logo }),
  };
}

/**
 * A bank's text in a language no page is in would never be shown: `moat config validate` and the
 * start name the entry (`branding.paymentCharges.fr`), so a typo or a missing catalogue is found
 * before customers silently get the default instead. Empty when every entry can be shown.
 */
export function bankTextProblems(
  config: { branding: MoatConfig['branding']; scopes?: MoatConfig['scopes'] | undefined },
  catalogues: Catalogues = loadCatalogues(join(VIEWS_DIR, 'locales')),
): string[] {
  const texts: Record<string, LocalisedText | undefined> = {
    'branding.bankName': config.branding.bankName,
    'branding.contact': config.branding.contact,
    'branding.paymentCharges': config.branding.paymentCharges,
    ...Object.fromEntries(Object.entries(config.scopes ?? {}).map(([scope, s]) => [`scopes.${scope}.description`, s.description])),
  };
  return Object.entries(texts).flatMap(([key, text]) =>
    languagesOf(text)
      // Shown on some page: the entry a page in one of the catalogues' languages would pick.
      .filter((tag) => !catalogues.locales.some((locale) => textIn({ default: '', [tag]: tag }, locale) === tag))
      .map((tag) => `${key}.${tag}: no customer page is in this language (views/locales has ${catalogues.locales.join(', ')})`),
  );
}

import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/*
 * The customer pages' words, one catalogue a language in views/locales/<BCP 47 tag>.json. English
 * (en.json) is the reference: every other catalogue must have exactly its keys, checked when Moat
 * starts (a bank adds a language by adding a file; a missing or extra key stops the start, naming
 * it). Placeholders are {name}, or {name:minute} (also second, day) for a number said with its unit
 * and the locale's plural ("1 minute", "5 minutos"); values are escaped by the templates, never by
 * the catalogue.
 *
 * The language of a page: the first of the authorization's ui_locales (OpenID Connect Core §3.1.2.1)
 * that Moat has, else the first of the browser's Accept-Language (RFC 9110 §12.5.4) by weight,
 * else English. A tag matches a catalogue exactly, or by its language alone (pt → pt-BR).
 */

export const REFERENCE_LOCALE = 'en';

/** The Intl locale a catalogue formats dates and amounts in: English pages use British formats. */
export function intlLocale(locale: string): string {
  return locale === REFERENCE_LOCALE ? 'en-GB' : locale;
}

export type Translate = (key: string, params?: Record<string, string | number>) => string;

export interface Catalogues {
  locales: string[];
  /** The catalogue's words for a locale Moat has; an unknown key throws (a template bug, caught by the tests). */
  translator(locale: string): Translate;
  /** The locale for a page: ui_locales first, then Accept-Language, then English. */
  negotiate(uiLocales: string | undefined, acceptLanguage: string | undefined): string;
}

export function loadCatalogues(dir: string): Catalogues {
  const all = new Map<string, Record<string, string>>();
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const parsed = JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Object.values(parsed).some((v) => typeof v !== 'string')) {
      throw new Error(`views/locales/${file}: expected an object of strings`);
    }
    all.set(basename(file, '.json'), parsed as Record<string, string>);
  }
  const reference = all.get(REFERENCE_LOCALE);
  if (reference === undefined) throw new Error(`views/locales/${REFERENCE_LOCALE}.json: the reference catalogue is missing`);
  for (const [locale, messages] of all) {
    const missing = Object.keys(reference).filter((k) => !(k in messages));
    const extra = Object.keys(messages).filter((k) => !(k in reference));
    if (missing.length > 0 || extra.length > 0) {
      throw new Error(
        `views/locales/${locale}.json: ${missing.length > 0 ? `missing ${missing.join(', ')}` : ''}${missing.length > 0 && extra.length > 0 ? '; ' : ''}${extra.length > 0 ? `not in ${REFERENCE_LOCALE}.json: ${extra.join(', ')}` : ''}`,
      );
    }
  }
  const locales = [...all.keys()];
  const match = (tag: string): string | undefined => {
    const lower = tag.trim().toLowerCase();
    if (lower === '') return undefined;
    return locales.find((l) => l.toLowerCase() === lower) ?? locales.find((l) => l.toLowerCase().split('-')[0] === lower.split('-')[0]);
  };
  return {
    locales,
    translator(locale) {
      const messages = all.get(locale) ?? reference;
      return (key, params = {}) => {
        const text = messages[key];
        if (text === undefined) throw new Error(`no message ${key} in views/locales/${locale}.json`);
        return text.replace(/\{(\w+)(?::(minute|second|day))?\}/g, (whole, name: string, unit: string | undefined) => {
          if (!(name in params)) return whole;
          const value = params[name]!;
          // {minutes:minute}: a number with its unit, plural and all, as the locale says it (Intl).
          return unit === undefined || typeof value !== 'number'
            ? String(value)
            : new Intl.NumberFormat(intlLocale(locale), { style: 'unit', unit, unitDisplay: 'long' }).format(value);
        });
      };
    },
    negotiate(uiLocales, acceptLanguage) {
      for (const tag of (uiLocales ?? '').split(' ')) {
        const found = match(tag);
        if (found !== undefined) return found;
      }
      const weighted = (acceptLanguage ?? '')
        .split(',')
        .map((part, index) => {
          const [tag = '', ...attributes] = part.split(';');
          const q = attributes.map((a) => /^\s*q=([\d.]+)\s*$/.exec(a)?.[1]).find((v) => v !== undefined);
          return { tag, q: q === undefined ? 1 : Number(q), index };
        })
        .filter((t) => t.q > 0)
        .sort((a, b) => b.q - a.q || a.index - b.index);
      for (const { tag } of weighted) {
        const found = match(tag);
        if (found !== undefined) return found;
      }
      return REFERENCE_LOCALE;
    },
  };
}

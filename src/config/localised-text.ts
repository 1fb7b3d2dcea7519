import { z } from 'zod';

/*
 * Text a bank writes into its configuration for customers to read (its charges for a payment, how
 * to contact it, what a scope lets a TPP do) is either one string, shown in every language, or a map
 * of BCP 47 language tag to string with a required `default`, shown when the page's language has no
 * entry:
 *
 *   paymentCharges: { default: "No charge", pt-BR: "Sem tarifa" }
 *
 * A page picks the entry for its language exactly, then by language alone (a `pt` entry serves a
 * pt-BR page, a pt-PT entry does too when there is neither), else `default` (issue 18 point 8).
 */

/** One string for every language, or strings by language tag with a `default`. */
export type LocalisedText = string | Readonly<Record<string, string> & { default: string }>;

/** Whether a key of a localised text is a well-formed BCP 47 language tag (RFC 5646), as Intl reads it. */
function isLanguageTag(key: string): boolean {
  try {
    return Intl.getCanonicalLocales(key).length === 1;
  } catch {
    return false;
  }
}

/**
 * The schema of a localised text whose every entry has 1 to `max` characters. A bad entry is
 * reported by its own key (`branding.paymentCharges.pt-BR: …`), a missing default by `default`.
 */
export function localisedText(max: number) {
  const textProblem = (v: unknown): string | undefined =>
    typeof v !== 'string'
      ? 'expected a text'
      : v.length === 0
        ? 'expected a text, not an empty one'
        : v.length > max
          ? `expected at most ${max} characters`
          : undefined;
  return z
    .unknown()
    .superRefine((value, ctx) => {
      if (typeof value === 'string') {
        const problem = textProblem(value);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
        return;
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        ctx.addIssue({ code: 'custom', message: `expected a text of at most ${max} characters, or a map of language tag to text with a default` });
        return;
      }
      for (const [key, entry] of Object.entries(value)) {
        if (key !== 'default' && !isLanguageTag(key)) {
          ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" is neither a language tag (BCP 47, such as en or pt-BR) nor default` });
          continue;
        }
        const problem = textProblem(entry);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: problem });
      }
      if (!('default' in value)) {
        ctx.addIssue({ code: 'custom', path: ['default'], message: 'required: the text shown in a language the map does not name' });
      }
    })
    .transform((value) => value as LocalisedText);
}

/** The text for a page in `locale` (a BCP 47 tag): its own entry, one for its language, else the default. */
export function textIn(text: LocalisedText, locale: string): string;
export function textIn(text: LocalisedText | undefined, locale: string): string | undefined;
export function textIn(text: LocalisedText | undefined, locale: string): string | undefined {
  if (text === undefined || typeof text === 'string') return text;
  const wanted = locale.toLowerCase();
  const language = wanted.split('-')[0]!;
  const keys = Object.keys(text).filter((k) => k !== 'default');
  const key =
    keys.find((k) => k.toLowerCase() === wanted) ??
    keys.find((k) => k.toLowerCase() === language) ??
    keys.find((k) => k.toLowerCase().split('-')[0] === language);
  return key === undefined ? text.default : text[key]!;
}

/** The text where no language applies (a passkey's relying-party name): the single text, or `default`. */
export function defaultText(text: LocalisedText): string {
  return typeof text === 'string' ? text : text.default;
}

/** The language tags a localised text names (not `default`), to check against the catalogues Moat has. */
export function languagesOf(text: LocalisedText | undefined): string[] {
  return text === undefined || typeof text === 'string' ? [] : Object.keys(text).filter((k) => k !== 'default');
}

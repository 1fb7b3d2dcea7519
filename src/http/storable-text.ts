import { decodeJwt } from 'jose';

/*
 * Text every store can hold, checked once where a request enters. Postgres refuses NUL in text and
 * jsonb ("unsupported Unicode escape sequence") and an unpaired UTF-16 surrogate in jsonb ("invalid
 * input syntax for type json"); bytes that are not UTF-8 (overlong forms, encoded surrogates) are
 * not text at all. Such a value reaching storage is a 500 — after a code was spent, a consent
 * half-written — so it is refused at the edge as the client's error, naming the field.
 *
 * One check for every value a request carries: form parameters and the query, JSON bodies (member
 * names too), and what is inside a value that is itself JSON (claims, authorization_details) or a
 * JWT (a request object, a software statement, a signed registration request), which is decoded
 * later without another look.
 */

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
/** A compact JWS (RFC 7515 §7.1); a JWE's payload cannot be read here. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** JSON in a JWT in a JSON body is as deep as requests nest values in values. */
const MAX_NESTING = 3;

/** Bytes as text, or undefined when they are not UTF-8. */
export function strictUtf8(bytes: Uint8Array): string | undefined {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Why some string in `value` (named `name`, '' for a whole body) cannot be stored, as an
 * error_description naming the field; undefined when every string can be.
 */
export function unstorableText(value: unknown, name = ''): string | undefined {
  // Iterative: a body nested thousands deep is the parser's business, not a stack overflow here.
  const pending: { value: unknown; name: string; nesting: number }[] = [{ value, name, nesting: 0 }];
  while (pending.length > 0) {
    const next = pending.pop()!;
    if (typeof next.value === 'string') {
      const flaw = flawOf(next.value);
      if (flaw !== undefined) return `${next.name === '' ? 'the request body' : next.name} ${flaw}`;
      if (next.nesting < MAX_NESTING) {
        const inner = decoded(next.value);
        if (inner !== undefined) pending.push({ value: inner, name: next.name, nesting: next.nesting + 1 });
      }
    } else if (Array.isArray(next.value)) {
      next.value.forEach((member, i) => {
        pending.push({ value: member, name: `${next.name}[${i}]`, nesting: next.nesting });
      });
    } else if (typeof next.value === 'object' && next.value !== null) {
      for (const [key, member] of Object.entries(next.value)) {
        const flaw = flawOf(key);
        if (flaw !== undefined) return `a member name in ${next.name === '' ? 'the request body' : next.name} ${flaw}`;
        pending.push({ value: member, name: next.name === '' ? key : `${next.name}.${key}`, nesting: next.nesting });
      }
    }
  }
  return undefined;
}

/**
 * The same for an application/x-www-form-urlencoded string (a body or a query): every name and
 * value, percent-decoded, must be UTF-8 and storable. Malformed escapes (`%zz`) stay literal, as
 * in every form parser, and are left to the endpoint.
 */
export function unstorableForm(form: string): string | undefined {
  for (const pair of form.split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    const name = percentDecoded(at === -1 ? pair : pair.slice(0, at));
    if (name === undefined) return 'a parameter name is not UTF-8 once percent-decoded';
    const nameFlaw = flawOf(name);
    if (nameFlaw !== undefined) return `a parameter name ${nameFlaw}`;
    const value = at === -1 ? '' : percentDecoded(pair.slice(at + 1));
    if (value === undefined) return `${printable(name)} is not UTF-8 once percent-decoded`;
    const problem = unstorableText(value, printable(name));
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/**
 * A form component percent-decoded, or undefined when its bytes are not UTF-8: decodeURIComponent
 * refuses overlong forms and encoded surrogates (ECMA-262 Decode); a `%` that starts no escape is
 * kept as itself first, so only the bytes are judged.
 */
function percentDecoded(component: string): string | undefined {
  try {
    return decodeURIComponent(component.replaceAll('+', ' ').replace(/%(?![0-9A-Fa-f]{2})/g, '%25'));
  } catch {
    return undefined;
  }
}

function flawOf(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain a NUL character (U+0000)';
  if (!text.isWellFormed()) return 'must not contain an unpaired UTF-16 surrogate (it is not Unicode text)';
  return undefined;
}

/** What a string value carries inside, when it is JSON or a JWT. */
function decoded(text: string): unknown {
  const first = text.trimStart()[0];
  if (first === '{' || first === '[') {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }
  if (!COMPACT_JWS.test(text)) return undefined;
  try {
    return decodeJwt(text);
  } catch {
    return undefined;
  }
}

/** A parameter name as an error may quote it: a hostile name is cut short. */
function printable(name: string): string {
  return name.length > 64 ? `${name.slice(0, 64)}…` : name;
}

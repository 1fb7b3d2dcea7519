import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';

/*
 * What must never be in a log line — JWTs (tokens, software statements, assertions, request
 * objects), private keys, customers' passwords, session cookies, bearer credentials, authorization
 * codes in URLs — and what an error object must not carry into one: a driver's SQL statement and
 * parameters, or a row's detail (`err.params` of a failed insert is the refresh token it stored).
 * The global teardown searches every Moat's log with it; tests of redaction use it on their lines.
 */
const FORBIDDEN: [string, RegExp][] = [
  ['a JWT or JWS (token, software statement, assertion, request object)', /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\./],
  ['a PEM private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ['a private JWK member', /\\?"(d|p|q|dp|dq|qi)\\?":\\?"[A-Za-z0-9_-]{20,}/],
  ['a session or interaction cookie', /(_session|_interaction|_interaction_resume|__Host-moat-[a-z]+)(\.sig)?=[A-Za-z0-9_.-]{10,}/],
  ['a bearer credential', /\b(Bearer|DPoP) [A-Za-z0-9_.-]{20,}/],
  ['an authorization code in a URL', /[?&]code=[A-Za-z0-9_-]{20,}/],
  ...SANDBOX_CUSTOMERS.map((c): [string, RegExp] => [`the sandbox password of ${c.username}`, new RegExp(c.password.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))]),
  ...SANDBOX_CUSTOMERS.map((c): [string, RegExp] => [`the sandbox TOTP secret of ${c.username}`, new RegExp(c.totpSecret)]),
];

/**
 * Fields of a database (or Redis) error that hold the data it was working on: pg and PGlite's
 * `detail` ("Key (id)=(…) already exists") and `where` (the JSON being parsed), PGlite's `query`
 * and `params`, `parameters`, `internalQuery`, ioredis's `command` (its arguments).
 */
const ERROR_DATA_FIELDS = ['params', 'parameters', 'query', 'internalQuery', 'where', 'detail', 'command'];

/** The error objects of a parsed log line: its `err`, and their causes and aggregated errors. */
function errorFieldsIn(value: unknown, path: string, found: string[]): void {
  if (typeof value !== 'object' || value === null) return;
  for (const [name, inner] of Object.entries(value)) {
    if (ERROR_DATA_FIELDS.includes(name)) found.push(`${path}.${name}`);
    if (name === 'cause') errorFieldsIn(inner, `${path}.cause`, found);
    if (name === 'errors' && Array.isArray(inner))
      inner.forEach((e, i) => {
        errorFieldsIn(e, `${path}.errors.${i}`, found);
      });
  }
}

/** What one log line gives away, described; empty when nothing. */
export function secretsInLogLine(line: string): string[] {
  const hits = FORBIDDEN.filter(([, pattern]) => pattern.test(line)).map(([what]) => what);
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return hits;
  }
  const fields: string[] = [];
  errorFieldsIn((parsed as { err?: unknown } | null)?.err, 'err', fields);
  if (fields.length > 0) hits.push(`an error's statement, parameters or row data (${fields.join(', ')})`);
  return hits;
}

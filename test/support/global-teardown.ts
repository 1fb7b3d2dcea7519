import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sql-customer-directory.ts';

/*
 * After the whole run: every log line any test's Moat wrote (test/support/moat-harness.ts keeps
 * them in TEST_MOAT_LOG_DIR) is searched for what must never be logged — JWTs (tokens, software
 * statements, assertions, request objects), private keys, customers' passwords, session cookies,
 * bearer credentials, authorization codes in URLs. One hit fails the run, naming the file and line.
 */
const FORBIDDEN: [string, RegExp][] = [
  ['a JWT or JWS (token, software statement, assertion, request object)', /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\./],
  ['a PEM private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ['a private JWK member', /\\?"(d|p|q|dp|dq|qi)\\?":\\?"[A-Za-z0-9_-]{20,}/],
  ['a session or interaction cookie', /(_session|_interaction|_interaction_resume|__Host-moat-[a-z]+)(\.sig)?=[A-Za-z0-9_.-]{10,}/],
  ['a bearer credential', /\b(Bearer|DPoP) [A-Za-z0-9_.-]{20,}/],
  ['an authorization code in a URL', /[?&]code=[A-Za-z0-9_-]{20,}/],
  ...SANDBOX_CUSTOMERS.map((c): [string, RegExp] => [`the sandbox password of ${c.username}`, new RegExp(c.password.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))]),
];

export default async function globalTeardown(): Promise<void> {
  const dir = process.env.TEST_MOAT_LOG_DIR;
  if (dir === undefined || !existsSync(dir)) return;
  let lines = 0;
  const hits: string[] = [];
  for (const file of readdirSync(dir)) {
    for (const [i, line] of readFileSync(join(dir, file), 'utf8').split('\n').entries()) {
      if (line === '') continue;
      lines += 1;
      for (const [what, pattern] of FORBIDDEN) {
        if (pattern.test(line) && hits.length < 20) hits.push(`${file}:${i + 1}: ${what}: ${line.slice(0, 300)}`);
      }
    }
  }
  if (hits.length > 0) throw new Error(`secrets in the logs of this test run:\n${hits.join('\n')}`);
  process.stdout.write(`moat tests: ${lines} log lines of this run searched for tokens, keys, passwords, cookies and codes: none found (${dir})\n`);
}

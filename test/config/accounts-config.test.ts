import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { accountSourceOf, createConfiguredAccountService } from '../../src/accounts/account-source.ts';
import { loadConfig } from '../../src/config/load.ts';
import { problemsOf } from '../support/config-problems.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createTestCa, issueLeaf } from '../support/pki.ts';

/*
 * `accounts` in moat.yaml (issue 17 points 2 and 4): validated at start-up, every message naming
 * the key.
 */

function load(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'moat-config-'));
  writeFileSync(join(dir, 'moat.yaml'), yaml);
  return { dir, load: () => loadConfig({ env: {}, cwd: dir }) };
}

const PRODUCTION =
  'mode: production\nstorage: { postgresUrl: postgres://db/moat, redisUrl: redis://cache }\ntls: { certFile: s.pem, keyFile: s.key }\ntrustAnchors: [ca.pem]\nadmin: { tokenFile: admin.token }\nsca: { totp: { encryptionKeyFile: factor.key } }\n';

describe('accounts configuration', () => {
  it('reads the sandbox demo accounts through the contract in sandbox mode, and the database in production, when no source is set', () => {
    expect(accountSourceOf(load('').load().config)).toBe('sandbox');
    expect(accountSourceOf(load(PRODUCTION).load().config)).toBe('database');
  });

  it("takes the bank's account service with its defaults, resolving file paths against moat.yaml", () => {
    const { dir, load: read } = load(
      'accounts:\n  source: http\n  http: { url: "https://accounts.bank.example/moat", clientCertFile: moat.pem, clientKeyFile: moat.key, caFile: bank-ca.pem }\n',
    );
    const { accounts } = read().config;
    expect(accounts.http).toEqual({
      url: 'https://accounts.bank.example/moat',
      clientCertFile: join(dir, 'moat.pem'),
      clientKeyFile: join(dir, 'moat.key'),
      caFile: join(dir, 'bank-ca.pem'),
      timeoutMs: 3000,
      retries: 2,
      retryBackoffMs: 100,
      circuitBreaker: { failureThreshold: 5, openSeconds: 30 },
    });
  });

  it('names the key of every mistake', () => {
    expect(problemsOf(load('accounts: { source: http }\n').load)).toEqual([expect.stringMatching(/^accounts\.http: required when accounts\.source is http/)]);
    expect(problemsOf(load('accounts: { source: ledger }\n').load)).toEqual([expect.stringMatching(/^accounts\.source: /)]);
    expect(
      problemsOf(
        load(
          'accounts:\n  source: http\n  http: { url: "http://accounts.bank.example", clientCertFile: a, clientKeyFile: b, timeoutMs: 5, retries: 9, circuitBreaker: { failureThreshold: 0 } }\n',
        ).load,
      ),
    ).toEqual(
      expect.arrayContaining([
        'accounts.http.url: expected an https:// URL (the account service is called over mutual TLS)',
        expect.stringMatching(/^accounts\.http\.timeoutMs: /),
        expect.stringMatching(/^accounts\.http\.retries: /),
        expect.stringMatching(/^accounts\.http\.circuitBreaker\.failureThreshold: /),
      ]),
    );
    expect(problemsOf(load('accounts:\n  source: http\n  http: { url: "https://a.example" }\n').load)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^accounts\.http\.clientCertFile: /), expect.stringMatching(/^accounts\.http\.clientKeyFile: /)]),
    );
    expect(problemsOf(load('accounts:\n  http: { url: "https://a.example", clientCertFile: a, clientKeyFile: b }\n').load)).toEqual([
      expect.stringMatching(/^accounts\.source: set it to http/),
    ]);
    expect(problemsOf(load(`${PRODUCTION}accounts: { source: sandbox }\n`).load)).toEqual([
      expect.stringMatching(/^accounts\.source: sandbox serves demo accounts/),
    ]);
  });

  it("refuses at start-up a client certificate file that is missing, or a key that is not the certificate's, naming the keys", async () => {
    const ca = await createTestCa([{ CN: ['Bank CA'] }]);
    const [mine, other] = await Promise.all([issueLeaf(ca, { subject: [{ CN: ['moat'] }] }), issueLeaf(ca, { subject: [{ CN: ['other'] }] })]);
    const dir = mkdtempSync(join(tmpdir(), 'moat-config-'));
    writeFileSync(join(dir, 'moat.pem'), mine.certPem);
    writeFileSync(join(dir, 'other.key'), other.keyPem);
    const http = {
      url: 'https://accounts.bank.example',
      clientCertFile: join(dir, 'moat.pem'),
      clientKeyFile: join(dir, 'missing.key'),
      timeoutMs: 3000,
      retries: 2,
      retryBackoffMs: 100,
      circuitBreaker: { failureThreshold: 5, openSeconds: 30 },
    };
    const deps = { logger: createLogger('silent'), registry: new Registry(), cacheSeconds: 600 };
    expect(() => createConfiguredAccountService(http, deps)).toThrow(/^accounts\.http\.clientKeyFile: cannot read .*missing\.key \(ENOENT\)/);
    expect(() => createConfiguredAccountService({ ...http, clientKeyFile: join(dir, 'other.key') }, deps)).toThrow(
      /^accounts\.http\.clientCertFile, accounts\.http\.clientKeyFile, accounts\.http\.caFile: not a usable certificate, key and CA/,
    );
  });
});

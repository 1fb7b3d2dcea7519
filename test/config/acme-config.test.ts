import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverDomains } from '../../src/acme/own-certificates.ts';
import { loadConfig } from '../../src/config/load.ts';
import { problemsOf } from '../support/config-problems.ts';

/*
 * `acme` in moat.yaml (issue 21 point 2): validated at start-up, every message naming the key.
 */

function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'moat-config-'));
  writeFileSync(join(dir, 'moat.yaml'), yaml);
  return { dir, load: () => loadConfig({ env, cwd: dir }) };
}

const SERVER_FILES = 'tls: { certFile: tls/server.pem, keyFile: tls/server.key }\n';
const ACME = 'acme:\n  enabled: true\n  directoryUrl: https://ca.bank.internal/acme/directory\n';

describe('acme configuration', () => {
  it('is off unless enabled, and otherwise takes its defaults, resolving file paths against moat.yaml', () => {
    expect(load('').load().config.acme.enabled).toBe(false);
    const { dir, load: read } = load(`${SERVER_FILES}${ACME}  caFile: bank-root.pem\n  accountKeyFile: acme/account.pem\n`);
    const { acme } = read().config;
    expect(acme).toMatchObject({
      enabled: true,
      directoryUrl: 'https://ca.bank.internal/acme/directory',
      caFile: join(dir, 'bank-root.pem'),
      accountKeyFile: join(dir, 'acme/account.pem'),
      http01: { host: '0.0.0.0', port: 80 },
      server: { enabled: true },
      accountServiceClient: { enabled: false },
      renewAtFraction: 2 / 3,
      retry: { initialSeconds: 60, maxSeconds: 3600 },
      checkIntervalSeconds: 60,
    });
  });

  it("orders the server certificate for the issuer's host and the mTLS aliases' host (RFC 8705 §5) unless told the domains", () => {
    expect(serverDomains(load(`issuer: https://as.bank.example\n${SERVER_FILES}${ACME}`).load().config)).toEqual(['as.bank.example']);
    expect(
      serverDomains(
        load(
          `issuer: https://as.bank.example\ntls: { certFile: s.pem, keyFile: s.key, mtlsEndpointAliasOrigin: "https://mtls.as.bank.example" }\n${ACME}`,
        ).load().config,
      ),
    ).toEqual(['as.bank.example', 'mtls.as.bank.example']);
  });

  it('takes the external account binding key from the environment', () => {
    const { load: read } = load(`${SERVER_FILES}${ACME}  externalAccountBinding: { kid: moat-prod }\n`, {
      MOAT_ACME__EXTERNAL_ACCOUNT_BINDING__HMAC_KEY: 'c2VjcmV0LW1hYy1rZXk',
    });
    expect(read().config.acme.externalAccountBinding).toEqual({ kid: 'moat-prod', hmacKey: 'c2VjcmV0LW1hYy1rZXk' });
  });

  it('names the key of every mistake', () => {
    expect(problemsOf(load(`${SERVER_FILES}acme: { enabled: true }\n`).load)).toEqual([
      expect.stringMatching(/^acme\.directoryUrl: required when acme\.enabled is true/),
    ]);
    expect(problemsOf(load(ACME).load)).toEqual([expect.stringMatching(/^tls\.certFile, tls\.keyFile: required with acme\.server\.enabled/)]);
    expect(
      problemsOf(
        load(
          `${SERVER_FILES}acme:\n  enabled: true\n  directoryUrl: http://ca.bank.internal/dir\n  renewAtFraction: 1.5\n  retry: { initialSeconds: 600, maxSeconds: 60 }\n  server: { domains: ["not a name"] }\n  contact: [pki@bank.example]\n`,
        ).load,
      ),
    ).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^acme\.directoryUrl: expected an https:\/\/ URL/),
        expect.stringMatching(/^acme\.renewAtFraction: /),
        'acme.retry.maxSeconds: expected initialSeconds ≤ maxSeconds',
        'acme.server.domains.0: expected a DNS name (ACME identifiers are DNS names)',
        'acme.contact.0: expected a mailto: URL',
      ]),
    );
    expect(problemsOf(load(`${SERVER_FILES}${ACME}  externalAccountBinding: { kid: k }\n`).load)).toEqual([
      'acme.externalAccountBinding.hmacKey: set exactly one of hmacKey or hmacKeyFile',
    ]);
    expect(problemsOf(load(`${SERVER_FILES}${ACME}  accountServiceClient: { enabled: true }\n`).load)).toEqual([
      expect.stringMatching(/^acme\.accountServiceClient\.enabled: needs accounts\.source http/),
      expect.stringMatching(/^acme\.accountServiceClient\.domains: required/),
    ]);
    expect(problemsOf(load('acme: { accountServiceClient: { enabled: true, domains: [moat.bank.internal] } }\n').load)).toEqual([
      expect.stringMatching(/^acme\.accountServiceClient\.enabled: needs acme\.enabled/),
    ]);
    expect(problemsOf(load(`${SERVER_FILES}${ACME}workers: 2\n`).load)).toEqual([
      expect.stringMatching(/^workers: acme renews certificates in a single process/),
    ]);
    expect(problemsOf(load(`${SERVER_FILES}${ACME}  http01: { port: 70000 }\n  surprise: true\n`).load)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^acme\.http01\.port: /), 'acme.surprise: unknown key']),
    );
  });
});

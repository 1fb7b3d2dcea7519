import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { problemsOf } from '../support/config-problems.ts';

function dirWith(yaml?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-config-'));
  if (yaml !== undefined) writeFileSync(join(dir, 'moat.yaml'), yaml);
  return dir;
}

describe('configuration loading', () => {
  it('runs the sandbox on the embedded default when there is no file and no environment', () => {
    const { config, source } = loadConfig({ env: {}, cwd: dirWith() });
    expect(source).toBe('defaults');
    expect(config.mode).toBe('sandbox');
    expect(config.issuer).toBe('https://localhost:8443');
    expect(config.storage.postgresUrl).toBeUndefined();
    expect(config.storage.redisUrl).toBeUndefined();
    expect(config.tokens.authorizationCodeTtl).toBe(60);
  });

  it('reads moat.yaml and resolves relative paths against its directory', () => {
    const cwd = dirWith('issuer: https://as.bank.example\ndataDir: ./state\ntrustAnchors: [certs/ca.pem]\n');
    const { config } = loadConfig({ env: {}, cwd });
    expect(config.issuer).toBe('https://as.bank.example');
    expect(config.dataDir).toBe(join(cwd, 'state'));
    expect(config.trustAnchors).toEqual([join(cwd, 'certs/ca.pem')]);
  });

  it('lets MOAT_* variables override single keys, parsing JSON values', () => {
    const { config, source } = loadConfig({
      env: { MOAT_LISTEN__PORT: '9443', MOAT_STORAGE__REDIS_URL: 'redis://127.0.0.1:6380', MOAT_KEYS__ALGORITHMS: '["ES256"]' },
      cwd: dirWith('listen: { port: 1 }\n'),
    });
    expect(config.listen.port).toBe(9443);
    expect(config.storage.redisUrl).toBe('redis://127.0.0.1:6380');
    expect(config.keys.algorithms).toEqual(['ES256']);
    expect(source).toContain('MOAT_LISTEN__PORT');
  });

  it('names every bad key and what was expected', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: { MOAT_ISSUER: 'http://as.bank.example', MOAT_LISTEN__PORT: 'eighty' },
        cwd: dirWith('tokens: { authorizationCodeTtl: 600 }\nstorage: { postgresUrl: mysql://x }\nbogus: 1\n'),
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'issuer: expected an https:// URL',
        expect.stringMatching(/^listen\.port: .*expected number/),
        expect.stringMatching(/^tokens\.authorizationCodeTtl: .*60/),
        'storage.postgresUrl: expected a postgres:// URL',
        'bogus: unknown key',
      ]),
    );
  });

  it('refuses the embedded default and generated TLS material in production', () => {
    const problems = problemsOf(() => loadConfig({ env: { MOAT_MODE: 'production' }, cwd: dirWith() }));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^storage\.postgresUrl: required in production/),
        expect.stringMatching(/^storage\.redisUrl: required in production/),
        expect.stringMatching(/^tls\.certFile, tls\.keyFile: required in production/),
        expect.stringMatching(/^trustAnchors: /),
      ]),
    );
  });

  it('refuses algorithms outside PS256, ES256 and EdDSA (FAPI 2.0 SP §5.4.1)', () => {
    const problems = problemsOf(() => loadConfig({ env: {}, cwd: dirWith('keys: { algorithms: [RS256] }\n') }));
    expect(problems).toEqual([expect.stringMatching(/^keys\.algorithms\.0: /)]);
  });

  it('reports a file that is not YAML, and a --config file that does not exist', () => {
    expect(problemsOf(() => loadConfig({ env: {}, cwd: dirWith('issuer: [unclosed\n') }))[0]).toMatch(/not valid YAML/);
    expect(problemsOf(() => loadConfig({ env: {}, file: 'missing.yaml', cwd: dirWith() }))).toEqual(['the configuration file does not exist']);
  });

  it('requires trusted proxies when a gateway terminates TLS', () => {
    const problems = problemsOf(() => loadConfig({ env: {}, cwd: dirWith('tls: { terminate: false }\n') }));
    expect(problems).toEqual([expect.stringMatching(/^trustedProxies\.addresses: required when tls\.terminate is false/)]);
  });

  it('refuses a directory whose organisation attribute is not a known attribute', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: {},
        cwd: dirWith('directories: [{ name: d, issuer: i, jwksFile: k.json, orgIdAttribute: orgnum }]\n'),
      }),
    );
    expect(problems).toEqual(['directories.0.orgIdAttribute: "orgnum" is not a known attribute name or dotted OID']);
  });

  it("accepts a directory as the real OB Directory is configured: statements without exp, bounded by the claim style's maximum age", () => {
    expect(() => loadConfig({ env: {}, cwd: dirWith('directories: [{ name: d, issuer: i, jwksFile: k.json, requireSsaExp: false }]\n') })).not.toThrow();
  });

  it("takes the bank's customer texts as one text or by language with a default, and names a bad entry by its key (issue 18 point 8)", () => {
    const { config } = loadConfig({
      env: {},
      cwd: dirWith('branding: { paymentCharges: { default: "No charge", pt-BR: "Sem tarifa" }, contact: "0800 123 4567" }\n'),
    });
    expect(config.branding.paymentCharges).toEqual({ default: 'No charge', 'pt-BR': 'Sem tarifa' });
    expect(config.branding.contact).toBe('0800 123 4567');
    const problems = problemsOf(() =>
      loadConfig({
        env: {},
        cwd: dirWith(
          [
            'branding: { paymentCharges: { pt-BR: "Sem tarifa" }, contact: { default: "0800", pt_BR: "0800" }, bankName: { default: "" } }',
            'scopes: { loans: { description: { default: "Read your loans", fr: 3 }, roles: [AISP] }, cards: { description: [x], roles: [AISP] } }',
            '',
          ].join('\n'),
        ),
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'branding.paymentCharges.default: required: the text shown in a language the map does not name',
        'branding.contact.pt_BR: "pt_BR" is neither a language tag (BCP 47, such as en or pt-BR) nor default',
        'branding.bankName.default: expected a text, not an empty one',
        'scopes.loans.description.fr: expected a text',
        'scopes.cards.description: expected a text of at most 200 characters, or a map of language tag to text with a default',
      ]),
    );
    expect(problems).toHaveLength(5);
  });

  it('refuses a bank time zone Intl does not know, naming the key (issue 18 point 6)', () => {
    expect(loadConfig({ env: {}, cwd: dirWith('branding: { timeZone: America/Sao_Paulo }\n') }).config.branding.timeZone).toBe('America/Sao_Paulo');
    expect(loadConfig({ env: {}, cwd: dirWith() }).config.branding.timeZone).toBe('UTC');
    expect(problemsOf(() => loadConfig({ env: {}, cwd: dirWith('branding: { timeZone: Brasilia }\n') }))).toEqual([
      'branding.timeZone: expected an IANA time zone such as Europe/London or America/Sao_Paulo',
    ]);
  });

  it('refuses a resource server scope that is not configured', () => {
    const problems = problemsOf(() =>
      loadConfig({
        env: {},
        cwd: dirWith('resourceServers: [{ identifier: "https://api.bank.example", scopes: [loans] }]\n'),
      }),
    );
    expect(problems).toEqual(['resourceServers.0.scopes: unknown scope "loans" (not in scopes)']);
  });

  it("takes the bank's branding, resolving the logo path, and refuses colours a customer could not read (WCAG 2.1 AA)", () => {
    const { config } = loadConfig({ env: {}, cwd: dirWith('branding: { bankName: "Northwind Bank", logoFile: logo.svg, primaryColor: "#5b2a86" }\n') });
    expect(config.branding).toEqual(expect.objectContaining({ bankName: 'Northwind Bank', primaryColor: '#5b2a86', primaryTextColor: '#ffffff' }));
    expect(config.branding.logoFile).toMatch(/\/logo\.svg$/);
    const problems = problemsOf(() => loadConfig({ env: {}, cwd: dirWith('branding: { primaryColor: "#ffd700", logoFile: logo.gif }\n') }));
    expect(problems).toEqual(expect.arrayContaining(['branding.logoFile: expected a .png, .jpg or .svg file']));
    const contrast = problemsOf(() => loadConfig({ env: {}, cwd: dirWith('branding: { primaryColor: "#ffd700" }\n') }));
    expect(contrast).toEqual(['branding.primaryTextColor: primaryTextColor on primaryColor must have a contrast ratio of at least 4.5:1 (WCAG 2.1 AA)']);
    expect(problemsOf(() => loadConfig({ env: {}, cwd: dirWith('branding: { primaryColor: red }\n') }))).toEqual([
      'branding.primaryColor: expected a colour like #0b3d5c',
    ]);
  });

  it('takes the sign-in throttling policy and refuses nonsense', () => {
    const { config } = loadConfig({ env: { MOAT_CUSTOMERS__LOGIN_THROTTLE__PER_ACCOUNT__FAILURES: '3' }, cwd: dirWith() });
    expect(config.customers.loginThrottle.perAccount).toEqual({ failures: 3, lockSeconds: 900 });
    expect(problemsOf(() => loadConfig({ env: { MOAT_CUSTOMERS__LOGIN_THROTTLE__PER_ACCOUNT__FAILURES: '0' }, cwd: dirWith() }))).toEqual([
      'customers.loginThrottle.perAccount.failures: Too small: expected number to be >=1',
    ]);
  });

  describe("customers.source: oidc (the bank's OpenID Provider)", () => {
    const idp = (body: string) => `customers:\n  source: oidc\n  oidc:\n${body}`;
    it('takes a complete IdP configuration, resolving its files against the configuration file', () => {
      const { config } = loadConfig({
        env: {},
        cwd: dirWith(
          idp(
            [
              '    issuer: https://idp.bank.example',
              '    clientId: moat',
              '    clientAuth: { method: private_key_jwt, jwkFile: moat-rp.jwk.json }',
              '    caFile: bank-ca.pem',
              '    customerIdClaim: customer_number',
              '    sca: { acrValues: [urn:bank:loa:high], amrCombinations: [[pwd, otp]] }',
              '',
            ].join('\n'),
          ),
        ),
      });
      const oidc = config.customers.oidc!;
      expect(oidc).toEqual(
        expect.objectContaining({ issuer: 'https://idp.bank.example', clientId: 'moat', scope: 'openid profile', nameClaim: 'name', timeoutMs: 5000 }),
      );
      expect(oidc.clientAuth).toEqual({ method: 'private_key_jwt', jwkFile: expect.stringMatching(/^\/.*\/moat-rp\.jwk\.json$/) });
      expect(oidc.caFile).toMatch(/^\/.*\/bank-ca\.pem$/);
    });

    it('names the missing IdP, a bad client authentication and an http issuer by their keys', () => {
      expect(problemsOf(() => loadConfig({ env: {}, cwd: dirWith('customers: { source: oidc }\n') }))).toEqual([
        expect.stringMatching(/^customers\.oidc: required when customers\.source is oidc/),
      ]);
      const problems = problemsOf(() =>
        loadConfig({
          env: {},
          cwd: dirWith(
            idp(['    issuer: http://idp.bank.example', '    clientId: moat', '    clientAuth: { method: client_secret_basic, secret: s }', ''].join('\n')),
          ),
        }),
      );
      expect(problems).toEqual(
        expect.arrayContaining(['customers.oidc.issuer: expected an https:// URL', expect.stringMatching(/^customers\.oidc\.clientAuth\.method: /)]),
      );
      expect(
        problemsOf(() =>
          loadConfig({
            env: {},
            cwd: dirWith(idp('    issuer: https://idp.bank.example\n    clientId: moat\n    clientAuth: { method: tls_client_auth, certFile: c.pem }\n')),
          }),
        ),
      ).toEqual(expect.arrayContaining(['customers.oidc.clientAuth.keyFile: Invalid input: expected string, received undefined']));
    });

    it('refuses an IdP configuration that cannot tell strong customer authentication apart (RTS Art. 4)', () => {
      const problems = problemsOf(() =>
        loadConfig({
          env: {},
          cwd: dirWith(idp('    issuer: https://idp.bank.example\n    clientId: moat\n    clientAuth: { method: private_key_jwt, jwkFile: k.json }\n')),
        }),
      );
      expect(problems).toEqual([expect.stringMatching(/^customers\.oidc\.sca: set acrValues or amrCombinations/)]);
    });
  });
});

describe('keys.source pkcs11 (signing keys in an HSM)', () => {
  const hsm = 'keys:\n  source: pkcs11\n  pkcs11: { library: /usr/lib/softhsm/libsofthsm2.so, tokenLabel: moat }\n';

  it('takes the PIN from MOAT_KEYS__PKCS11__PIN, a digits-only PIN included, and keeps PS256 and ES256 by default', () => {
    const { config } = loadConfig({ env: { MOAT_KEYS__PKCS11__PIN: '0042' }, cwd: dirWith(hsm) });
    expect(config.keys).toEqual(expect.objectContaining({ source: 'pkcs11', algorithms: ['PS256', 'ES256'] }));
    expect(config.keys.pkcs11).toEqual(expect.objectContaining({ pin: '0042', maxSessions: 4 }));
    expect(loadConfig({ env: { MOAT_KEYS__PKCS11__PIN: '123456' }, cwd: dirWith(hsm) }).config.keys.pkcs11?.pin).toBe('123456');
  });

  it('resolves pinFile against the configuration file and keeps the file default of three algorithms', () => {
    const dir = dirWith('keys:\n  source: pkcs11\n  pkcs11: { library: /lib/p11.so, tokenLabel: moat, pinFile: secrets/pin }\n');
    expect(loadConfig({ env: {}, cwd: dir }).config.keys.pkcs11?.pinFile).toBe(join(dir, 'secrets', 'pin'));
    expect(loadConfig({ env: {}, cwd: dirWith() }).config.keys).toEqual(expect.objectContaining({ source: 'file', algorithms: ['PS256', 'ES256', 'EdDSA'] }));
  });

  it('names keys.pkcs11 when it is missing, the PIN when there is none or two, and EdDSA, which Moat does not keep in a token', () => {
    expect(problemsOf(() => loadConfig({ env: {}, cwd: dirWith('keys: { source: pkcs11 }\n') }))).toEqual([
      'keys.pkcs11: required when keys.source is pkcs11 (library, tokenLabel and pin or pinFile)',
    ]);
    expect(problemsOf(() => loadConfig({ env: {}, cwd: dirWith(hsm) }))).toEqual(['keys.pkcs11.pin: set exactly one of pin or pinFile']);
    expect(problemsOf(() => loadConfig({ env: { MOAT_KEYS__ALGORITHMS: '["PS256","EdDSA"]', MOAT_KEYS__PKCS11__PIN: '1' }, cwd: dirWith(hsm) }))).toEqual([
      'keys.algorithms: EdDSA cannot be kept in a PKCS#11 token by Moat; use PS256 and ES256',
    ]);
  });
});

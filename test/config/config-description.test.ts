import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configHash, describeConfig, flattenConfig, isSecretKey, planConfig } from '../../src/config/config-description.ts';
import { validateConfig } from '../../src/config/load.ts';
import { PRODUCTION_RULES, productionViolations } from '../../src/config/production-rules.ts';
import type { MoatConfig } from '../../src/config/schema.ts';
import { runMoat } from '../support/cli.ts';

/*
 * Security configuration as code: the effective configuration as dotted keys, its hash, the plan
 * between a file and a running description (secrets as changed/unchanged only), and the production
 * rules `moat config validate --production` applies.
 */

const dir = mkdtempSync(join(tmpdir(), 'moat-config-'));
const config = (raw: Record<string, unknown>) => validateConfig(raw, 'test', dir);

const PRODUCTION = {
  mode: 'production',
  issuer: 'https://bank.example',
  storage: { postgresUrl: 'postgres://moat:s3cret-password@db/moat', redisUrl: 'redis://cache:6379' },
  tls: { certFile: '/etc/moat/server.pem', keyFile: '/etc/moat/server.key' },
  trustAnchors: ['/etc/moat/tpp-ca.pem'],
  admin: { tokenFile: '/etc/moat/admin.token' },
  sca: { totp: { encryptionKeyFile: '/etc/moat/factor-encryption.key' } },
};

it('flattens the configuration into dotted keys, lists by index, empty ones as leaves', () => {
  const flat = flattenConfig(config({ directories: [{ name: 'OB', issuer: 'OpenBanking Ltd', jwksUri: 'https://keystore.example/jwks' }] }));
  expect(flat['tokens.accessTokenTtl']).toBe(300);
  expect(flat['directories.0.issuer']).toBe('OpenBanking Ltd');
  expect(flat.resourceServers).toEqual([]);
});

it('hashes the same configuration alike and a changed one differently; a secret counts as set, not by value', () => {
  const a = config(PRODUCTION);
  expect(configHash(config(PRODUCTION))).toBe(configHash(a));
  expect(configHash(config({ ...PRODUCTION, tokens: { accessTokenTtl: 600 } }))).not.toBe(configHash(a));
  expect(configHash(config({ ...PRODUCTION, storage: { ...PRODUCTION.storage, postgresUrl: 'postgres://moat:other@db/moat' } }))).toBe(configHash(a));
});

it('takes a PIN, a secret or a key given by value for a secret, never a file path', () => {
  expect(['keys.pkcs11.pin', 'sca.totp.encryptionKey', 'storage.redisUrl', 'customers.oidc.clientSecret'].filter(isSecretKey)).toHaveLength(4);
  expect(['keys.pkcs11.pinFile', 'tls.keyFile', 'admin.tokenFile', 'keys.pkcs11.tokenLabel', 'tokens.accessTokenTtl'].filter(isSecretKey)).toEqual([]);
});

it('describes a secret by a salted digest only, and plans it as changed or unchanged without its value', () => {
  const running = describeConfig(config(PRODUCTION));
  expect(JSON.stringify(running)).not.toContain('s3cret-password');
  expect(running.keys['storage.postgresUrl']).toEqual({ secret: true, digest: expect.any(String) });
  expect(planConfig(config(PRODUCTION), running)).toEqual([]);

  const file = config({
    ...PRODUCTION,
    tokens: { accessTokenTtl: 600 },
    storage: { ...PRODUCTION.storage, postgresUrl: 'postgres://moat:new-password@db/moat' },
    trustAnchors: ['/etc/moat/tpp-ca.pem', '/etc/moat/new-ca.pem'],
  });
  const plan = planConfig(file, running);
  expect(plan).toEqual([
    { key: 'storage.postgresUrl', change: 'changed', secret: true },
    { key: 'tokens.accessTokenTtl', change: 'changed', secret: false, running: 300, file: 600 },
    { key: 'trustAnchors.1', change: 'added', secret: false, file: '/etc/moat/new-ca.pem' },
  ]);
  expect(JSON.stringify(plan)).not.toMatch(/password/);
});

describe('production rules', () => {
  it('keeps a production configuration that fails closed with operator authentication and no sandbox trust', () => {
    expect(productionViolations(config(PRODUCTION))).toEqual([]);
  });

  it('names each rule the sandbox default and an open fail mode break', () => {
    expect(productionViolations(config({}))).toEqual([expect.stringMatching(/^production-mode: mode: is sandbox/)]);
    expect(
      productionViolations(
        config({
          ...PRODUCTION,
          certificates: { revocation: { failMode: 'open' } },
          trustAnchors: ['/srv/moat/data/sandbox/tpp-ca.pem'],
          directories: [{ name: 'Sandbox', issuer: 'moat-sandbox-directory', jwksFile: '/srv/moat/data/sandbox/directory.public.jwks.json' }],
        }),
      ),
    ).toEqual([
      expect.stringMatching(/^revocation-fails-closed: certificates.revocation.failMode: is open/),
      expect.stringMatching(/^no-sandbox-ca: trustAnchors: \/srv\/moat\/data\/sandbox\/tpp-ca.pem is a sandbox CA/),
      expect.stringMatching(/^no-sandbox-directory: directories.0:/),
    ]);
    // PSD2 RTS Art. 4: SCA off (the sca section's second factor) breaks the rule.
    expect(productionViolations({ ...config(PRODUCTION), sca: { totp: { enabled: false } } } as MoatConfig)).toEqual([
      expect.stringMatching(/^sca-on: sca.totp.enabled: is false/),
    ]);
    expect(PRODUCTION_RULES.map((r) => r.name)).toEqual([
      'production-mode',
      'revocation-fails-closed',
      'operator-authentication',
      'no-sandbox-ca',
      'no-sandbox-directory',
      'sca-on',
    ]);
  });

  it('is applied by `moat config validate --production`, exiting 1 with each broken rule named', async () => {
    const file = join(dir, 'moat.yaml');
    writeFileSync(file, JSON.stringify({ ...PRODUCTION, certificates: { revocation: { failMode: 'open' } } }));
    const broken = await runMoat(['config', 'validate', '--production', '--config', file]);
    expect(broken.code).toBe(1);
    expect(broken.err).toContain('moat: production rule revocation-fails-closed: certificates.revocation.failMode: is open');
    writeFileSync(file, JSON.stringify(PRODUCTION));
    const kept = await runMoat(['config', 'validate', '--production', '--config', file]);
    expect(kept.err).toBe('');
    expect(kept.code).toBe(0);
    expect(kept.out).toContain(`hash ${configHash(config(PRODUCTION))}`);
    expect(kept.out).toContain('production rules: all 6 kept');
    // Without --production the sandbox default is valid, as before.
    expect((await runMoat(['config', 'validate'])).code).toBe(0);
  });
});

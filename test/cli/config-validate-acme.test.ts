import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { createOwnCertificates } from '../../src/acme/own-certificates.ts';
import { validateConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { runMoat } from '../support/cli.ts';
import { pebbleAvailable, startPebble, type Pebble } from '../support/pebble.ts';
import { createTestCa } from '../support/pki.ts';

/*
 * `moat config validate --connect` with `acme` (issue 21 point 2): the CA's ACME directory read as
 * Moat would read it, and its external account binding (RFC 8555 §7.3.4) required or not — against
 * a pebble that requires one, which Moat then orders through.
 */

const describeWithPebble = pebbleAvailable() ? describe : describe.skip;

// A MAC key as a CA hands it out: base64url, 48 random bytes here (pebble's examples use 48 too).
const EAB = { kid: 'moat-production', hmacKey: 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W' };

describeWithPebble('acme with a CA that requires external account binding', () => {
  let pebble: Pebble;
  beforeAll(async () => {
    pebble = await startPebble({ externalAccountKeys: { [EAB.kid]: EAB.hmacKey } });
  }, 120_000);
  afterAll(async () => {
    await pebble?.close();
  });

  function configDir(acme: Record<string, unknown>): string {
    const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    const config = {
      tls: { certFile: 'tls/server.pem', keyFile: 'tls/server.key' },
      acme: { enabled: true, directoryUrl: pebble.directoryUrl, caFile: pebble.caFile, ...acme },
    };
    writeFileSync(join(cwd, 'moat.yaml'), JSON.stringify(config));
    return cwd;
  }

  it('--connect reads the directory and reports the binding it requires as configured', async () => {
    const r = await runMoat(['config', 'validate', '--connect'], {
      cwd: configDir({ externalAccountBinding: { kid: EAB.kid } }),
      env: { MOAT_ACME__EXTERNAL_ACCOUNT_BINDING__HMAC_KEY: EAB.hmacKey },
    });
    expect(r.err).toBe('');
    expect(r.out).toContain(`acme: ${pebble.directoryUrl} answers: external account binding required (configured)\n`);
    expect(r.code).toBe(0);
  });

  it('--connect names acme.externalAccountBinding when the CA requires one and none is configured', async () => {
    const r = await runMoat(['config', 'validate', '--connect'], { cwd: configDir({}) });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`moat: acme: acme.externalAccountBinding: ${pebble.directoryUrl} requires an external account binding (RFC 8555 §7.3.4)`);
  });

  it("--connect names acme.caFile when the directory's certificate does not chain to it", async () => {
    const stranger = await createTestCa([{ CN: ['Not the ACME CA'] }]);
    const cwd = configDir({});
    writeFileSync(join(cwd, 'stranger.pem'), stranger.certPem);
    writeFileSync(join(cwd, 'moat.yaml'), readFileSync(join(cwd, 'moat.yaml'), 'utf8').replace(JSON.stringify(pebble.caFile), '"stranger.pem"'));
    const r = await runMoat(['config', 'validate', '--connect'], { cwd });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      new RegExp(
        `^moat: acme: acme\\.directoryUrl ${pebble.directoryUrl.replaceAll('.', '\\.')} \\(trusting acme\\.caFile ${join(cwd, 'stranger.pem').replaceAll('.', '\\.')}\\): the ACME directory cannot be read: `,
      ),
    );
  });

  it("orders through the binding: the account is created with the CA's kid and MAC key", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-acme-eab-'));
    const config = validateConfig(
      {
        issuer: 'https://localhost:8443',
        dataDir: dir,
        keys: { dir: join(dir, 'keys') },
        tls: { certFile: 'server.pem', keyFile: 'server.key' },
        acme: {
          enabled: true,
          directoryUrl: pebble.directoryUrl,
          caFile: pebble.caFile,
          http01: { host: '127.0.0.1', port: pebble.httpPort },
          externalAccountBinding: EAB,
          checkIntervalSeconds: 3600,
        },
      },
      'test',
      dir,
    );
    const own = await createOwnCertificates({
      config,
      logger: createLogger('silent', new Writable({ write: (_c, _e, done) => done() })),
      registry: new Registry(),
    });
    try {
      expect(new X509Certificate(readFileSync(join(dir, 'server.pem'))).checkHost('localhost')).toBe('localhost');
      // The account key Moat generated is kept for the next start (the binding belongs to it).
      expect(readFileSync(join(dir, 'acme', 'account-key.pem'), 'utf8')).toMatch(/^-----BEGIN (EC )?PRIVATE KEY-----/);
    } finally {
      await own?.stop();
    }
  });
});

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.ts';
import { rotationPolicy } from '../../src/keys/key-rotation.ts';
import { problemsOf } from '../support/config-problems.ts';

/*
 * keys.rotation (issue 21), validated at start-up: a bad value stops Moat with a message naming the
 * key and what was expected.
 */

const dir = () => mkdtempSync(join(tmpdir(), 'moat-rotation-config-'));
const validate = (keys: Record<string, unknown>, more: Record<string, unknown> = {}) => validateConfig({ keys, ...more }, 'test', dir());

describe('keys.rotation', () => {
  it('reads `every` as a duration and publishes a key jwksCacheSeconds + checkIntervalSeconds before it signs', () => {
    const config = validate({ source: 'database', rotation: { every: '90d', jwksCacheSeconds: 7200, checkIntervalSeconds: 5 } });
    expect(config.keys.rotation.every).toBe(90 * 86_400);
    expect(rotationPolicy(config)).toEqual(expect.objectContaining({ every: 90 * 86_400, publishAhead: 7205, retain: 360 }));
    expect(validate({ source: 'database', rotation: { every: '12h', jwksCacheSeconds: 3600 } }).keys.rotation.every).toBe(43_200);
    expect(validate({ source: 'database', rotation: { every: 604_800 } }).keys.rotation.every).toBe(604_800);
  });

  it('leaves rotation to `moat keys rotate` when `every` is unset', () => {
    expect(validate({ source: 'database' }).keys.rotation).toEqual({ jwksCacheSeconds: 86_400, checkIntervalSeconds: 10 });
  });

  it('names keys.rotation.every for a value that is not a duration', () => {
    expect(problemsOf(() => validate({ source: 'database', rotation: { every: '90 days' } }))).toEqual([
      expect.stringMatching(/^keys\.rotation\.every: .*expected a duration such as 90d/),
    ]);
  });

  it('names keys.rotation.every when a key would sign before every client could have fetched it', () => {
    expect(problemsOf(() => validate({ source: 'database', rotation: { every: '1d', jwksCacheSeconds: 86_400 } }))).toEqual([
      expect.stringMatching(/^keys\.rotation\.every: must be longer than the 86410 s a new key is published before it signs/),
    ]);
  });

  it('names keys.rotation.every on keys that only one machine reads (a JWKS file)', () => {
    expect(problemsOf(() => validate({ rotation: { every: '90d' } }))).toEqual([
      expect.stringMatching(
        /^keys\.rotation\.every: scheduled rotation needs keys every instance reads: set keys\.source to database, or pkcs11 for the bank's HSM/,
      ),
    ]);
  });

  it("accepts `every` for keys in the bank's HSM (keys.source pkcs11), which then follow the shared schedule", () => {
    const pkcs11 = { library: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'moat', pin: '1234' };
    const config = validate({ source: 'pkcs11', pkcs11, rotation: { every: '30d', jwksCacheSeconds: 3600 } });
    expect(rotationPolicy(config)).toEqual(expect.objectContaining({ every: 30 * 86_400, publishAhead: 3610, algorithms: ['PS256', 'ES256'] }));
    expect(problemsOf(() => validate({ source: 'pkcs11', pkcs11, rotation: { every: '1h', jwksCacheSeconds: 3600 } }))).toEqual([
      expect.stringMatching(/^keys\.rotation\.every: must be longer than the 3610 s a new key is published before it signs/),
    ]);
    expect(problemsOf(() => validate({ source: 'pkcs11', rotation: { every: '30d' } }))).toEqual([
      expect.stringMatching(/^keys\.pkcs11: required when keys\.source is pkcs11/),
    ]);
  });

  it('names keys.rotation.checkIntervalSeconds and jwksCacheSeconds out of range', () => {
    const problems = problemsOf(() => validate({ source: 'database', rotation: { checkIntervalSeconds: 0, jwksCacheSeconds: -1 } }));
    expect(problems).toEqual(
      expect.arrayContaining([expect.stringMatching(/^keys\.rotation\.checkIntervalSeconds: /), expect.stringMatching(/^keys\.rotation\.jwksCacheSeconds: /)]),
    );
  });

  it('requires the key-encryption key in production, and refuses both forms of it at once', () => {
    const production = {
      mode: 'production',
      storage: { postgresUrl: 'postgres://db/moat', redisUrl: 'redis://cache' },
      trustAnchors: ['ca.pem'],
      admin: { tokenFile: 'admin.token' },
      tls: { terminate: false },
    };
    expect(problemsOf(() => validate({ source: 'database' }, production))).toContainEqual(
      expect.stringMatching(/^keys\.encryptionKey or keys\.encryptionKeyFile: required in production with keys\.source database/),
    );
    expect(problemsOf(() => validate({ source: 'database', encryptionKey: 'A'.repeat(43), encryptionKeyFile: 'kek' }))).toEqual([
      expect.stringMatching(/^keys\.encryptionKeyFile: set encryptionKey or encryptionKeyFile, not both/),
    ]);
    expect(problemsOf(() => validate({ source: 'database', encryptionKey: 'short' }))).toEqual([
      expect.stringMatching(/^keys\.encryptionKey: expected 32 bytes, base64url-encoded/),
    ]);
  });
});

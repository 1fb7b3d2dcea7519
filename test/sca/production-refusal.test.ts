import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, validateConfig } from '../../src/config/load.ts';

/* Production refuses one factor (issue 16 §5): the message names the key to change. */

const dir = mkdtempSync(join(tmpdir(), 'moat-sca-config-'));
const problemsOf = (config: Record<string, unknown>): readonly string[] => {
  try {
    validateConfig({ mode: 'production', issuer: 'https://as.example', ...config }, 'test', dir);
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
};

describe('production mode and customer authentication (PSD2 RTS on SCA Art. 4)', () => {
  it('refuses to start with password-only customer authentication, naming sca.totp.enabled', () => {
    expect(problemsOf({ sca: { totp: { enabled: false } } })).toContainEqual(
      expect.stringMatching(/^sca\.totp\.enabled: production refuses password-only customer authentication/),
    );
  });

  it('refuses one-time codes without a key to encrypt their secrets, naming the keys', () => {
    expect(problemsOf({})).toContainEqual(expect.stringMatching(/^sca\.totp\.encryptionKey or sca\.totp\.encryptionKeyFile: required in production/));
    expect(problemsOf({ sca: { totp: { encryptionKey: 'A'.repeat(43) } } }).filter((p) => p.startsWith('sca.'))).toEqual([]);
  });

  it('names a malformed key and the re-authentication period out of the RTS Art. 10a range', () => {
    expect(problemsOf({ sca: { totp: { encryptionKey: 'short' } } })).toContainEqual(expect.stringMatching(/^sca\.totp\.encryptionKey: expected 32 bytes/));
    expect(problemsOf({ sca: { accountAccessReauthDays: 365 } })).toContainEqual(expect.stringMatching(/^sca\.accountAccessReauthDays: /));
  });
});

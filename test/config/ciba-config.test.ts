import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cibaEnabled } from '../../src/config/ciba-enabled.ts';
import { ConfigError, validateConfig } from '../../src/config/load.ts';
import type { MoatConfig } from '../../src/config/schema.ts';

/*
 * Decoupled authorisation needs someone to answer it: production offers CIBA only with the bank's own
 * app configured, and refuses to be told to offer it without one.
 */

const dir = mkdtempSync(join(tmpdir(), 'moat-ciba-config-'));
const bankApp = {
  notificationEndpoint: 'https://app.bank.example/moat/notifications',
  clientCertFile: 'moat-client.pem',
  clientKeyFile: 'moat-client.key',
  callbackSubjectDn: 'CN=bank-app,O=Moat Bank',
};
const attempt = (config: Record<string, unknown>): { config?: MoatConfig; problems: readonly string[] } => {
  try {
    return { config: validateConfig({ issuer: 'https://as.example', ...config }, 'test', dir), problems: [] };
  } catch (err) {
    return { problems: (err as ConfigError).problems };
  }
};
const production = { mode: 'production', sca: { totp: { encryptionKey: 'A'.repeat(43) } } };

describe('ciba.enabled', () => {
  it('refuses ciba.enabled: true in production without ciba.bankApp, naming the key', () => {
    expect(attempt({ ...production, ciba: { enabled: true } }).problems).toContainEqual(
      expect.stringMatching(/^ciba\.bankApp: required in production when ciba\.enabled is true/),
    );
  });

  it('accepts ciba.enabled: true in production with the bank app', () => {
    expect(attempt({ ...production, ciba: { enabled: true, bankApp } }).problems.filter((p) => p.startsWith('ciba'))).toEqual([]);
  });

  it('defaults to off in production without the bank app, on with it, and on in the sandbox', () => {
    const asConfigured = (ciba: Record<string, unknown>, mode: 'sandbox' | 'production') => cibaEnabled({ mode, ciba: ciba as MoatConfig['ciba'] });
    expect(asConfigured({}, 'production')).toBe(false);
    expect(asConfigured({ bankApp }, 'production')).toBe(true);
    expect(asConfigured({ bankApp, enabled: false }, 'production')).toBe(false);
    expect(asConfigured({}, 'sandbox')).toBe(true);
    expect(asConfigured({ enabled: false }, 'sandbox')).toBe(false);
    const sandbox = attempt({});
    expect(sandbox.config === undefined ? undefined : cibaEnabled(sandbox.config)).toBe(true);
  });
});

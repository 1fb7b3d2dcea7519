import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startBankIdp, type BankIdp } from '../support/bank-idp.ts';
import { runMoat } from '../support/cli.ts';

/*
 * `moat config validate --connect`: besides validating the keys, it reaches the bank's systems the
 * configuration names — here the bank's OpenID Provider (customers.source: oidc), a real
 * oidc-provider on a loopback port — and names the key of each that does not answer.
 */

let idp: BankIdp;
beforeAll(async () => {
  idp = await startBankIdp();
});
afterAll(async () => {
  await idp?.close();
});

function configDir(customers: Record<string, unknown>): string {
  const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
  writeFileSync(join(cwd, 'moat.yaml'), stringify({ issuer: 'https://as.bank.example', customers }));
  return cwd;
}

describe('moat config validate --connect with customers.source: oidc', () => {
  it('reaches the bank IdP and says what it offers', async () => {
    const r = await runMoat(['config', 'validate', '--connect'], { cwd: configDir(idp.moatCustomersConfig()) });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`customers.oidc: ${idp.issuer} answers: PAR offered (used), RFC 9207 iss sent`);
  });

  it('does not connect without --connect', async () => {
    const quiet = await runMoat(['config', 'validate'], { cwd: configDir(idp.moatCustomersConfig()) });
    expect(quiet.code).toBe(0);
    expect(quiet.out).not.toContain('customers.oidc');
  });

  it('exits 1 naming customers.oidc when the IdP does not answer, and the key of a client key file it cannot read', async () => {
    const missingKey = idp.moatCustomersConfig({ clientAuth: { method: 'private_key_jwt', jwkFile: '/nonexistent/moat-rp.jwk.json' } });
    const unreadable = await runMoat(['config', 'validate', '--connect'], { cwd: configDir(missingKey) });
    expect(unreadable.code).toBe(1);
    expect(unreadable.err).toContain('moat: customers.oidc: customers.oidc.clientAuth.jwkFile: cannot read /nonexistent/moat-rp.jwk.json (ENOENT)');
    await idp.stop();
    try {
      const down = await runMoat(['config', 'validate', '--connect'], { cwd: configDir(idp.moatCustomersConfig()) });
      expect(down.code).toBe(1);
      expect(down.err).toContain(`moat: customers.oidc: customers.oidc.issuer ${idp.issuer}: unreachable (the IdP could not be reached (ECONNREFUSED))`);
    } finally {
      await idp.resume();
    }
  });
});

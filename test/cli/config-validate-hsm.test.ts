import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runMoat } from '../support/cli.ts';
import { softHsmAvailable, useSoftHsm, type SoftHsm } from '../support/softhsm.ts';

const describeWithHsm = softHsmAvailable() ? describe : describe.skip;

function configDir(pkcs11: Record<string, unknown>): string {
  const cwd = mkdtempSync(join(tmpdir(), 'moat-validate-'));
  writeFileSync(join(cwd, 'moat.yaml'), JSON.stringify({ keys: { source: 'pkcs11', pkcs11 } }));
  return cwd;
}

describeWithHsm('moat config validate --connect with keys.source pkcs11', () => {
  let hsm: SoftHsm;
  beforeAll(() => {
    hsm = useSoftHsm();
  });

  it("logs in to the token and lists Moat's keys without generating any", async () => {
    const cwd = configDir(hsm.createToken('validate'));
    const first = await runMoat(['config', 'validate', '--connect'], { cwd });
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^keys\.pkcs11: token "validate-[0-9a-f]+" present, PIN accepted, 0 Moat signing keys \(generated at first start\)$/m);
    await runMoat(['keys', 'list'], { cwd });
    const after = await runMoat(['config', 'validate', '--connect'], { cwd });
    expect(after.out).toMatch(/PIN accepted, 2 Moat signing keys \(PS256 active \S+, ES256 active \S+\)/);
  });

  it('fails naming keys.pkcs11.pin when the token refuses the PIN, and keys.pkcs11.tokenLabel when the token is missing', async () => {
    const wrongPin = await runMoat(['config', 'validate', '--connect'], { cwd: configDir({ ...hsm.createToken('validate-pin'), pin: '000000' }) });
    expect(wrongPin.code).toBe(1);
    expect(wrongPin.err).toMatch(/^moat: keys\.pkcs11: keys\.pkcs11\.pin: the token refused the PIN/m);
    const missing = await runMoat(['config', 'validate', '--connect'], { cwd: configDir({ library: hsm.library, tokenLabel: 'not-there', pin: '1' }) });
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('moat: keys.pkcs11: keys.pkcs11.tokenLabel: no token labelled "not-there"');
  });

  it('reaches nothing without --connect', async () => {
    const r = await runMoat(['config', 'validate'], { cwd: configDir({ library: hsm.library, tokenLabel: 'not-there', pin: '1' }) });
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('keys.pkcs11');
  });
});

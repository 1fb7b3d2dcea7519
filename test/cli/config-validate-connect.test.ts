import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAccountService, type TestAccountService } from '../support/account-service.ts';
import { runMoat } from '../support/cli.ts';
import { createTestCa, issueLeaf } from '../support/pki.ts';

/*
 * `moat config validate --connect` (issue 17 point 4): reaching the account service the
 * configuration names, over mutual TLS, and naming the key when it cannot.
 */

let service: TestAccountService;
beforeAll(async () => {
  service = await startAccountService();
});
afterAll(async () => {
  await service.close();
});

function configDir(http: Record<string, unknown>): string {
  const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
  writeFileSync(
    join(cwd, 'moat.yaml'),
    `accounts:\n  source: http\n  http: ${JSON.stringify({ ...service.files, url: service.url, timeoutMs: 2000, ...http })}\n`,
  );
  return cwd;
}

describe('moat config validate --connect', () => {
  it("reaches the bank's account service with Moat's client certificate and reports it", async () => {
    service.requests = [];
    const r = await runMoat(['config', 'validate', '--connect'], { cwd: configDir({}) });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`accounts: ${service.url} reachable over mutual TLS, its answer keeps the contract\n`);
    expect(service.requests).toEqual([{ path: '/bank/customers/moat-connectivity-check/accounts', clientCn: 'moat' }]);
  });

  it('does not reach anything without --connect', async () => {
    service.requests = [];
    const r = await runMoat(['config', 'validate'], { cwd: configDir({}) });
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('accounts:');
    expect(service.requests).toHaveLength(0);
  });

  it('exits 1 naming accounts.http.url when the service answers 500, breaks the contract, or is not there', async () => {
    service.behaviour = 'error';
    const failing = await runMoat(['config', 'validate', '--connect'], { cwd: configDir({}) });
    expect(failing.code).toBe(1);
    expect(failing.err).toContain(`moat: accounts: accounts.http.url ${service.url}: the account service failed (service_error, HTTP 500)`);
    service.behaviour = 'malformed';
    const malformed = await runMoat(['config', 'validate', '--connect'], { cwd: configDir({}) });
    expect(malformed.code).toBe(1);
    expect(malformed.err).toMatch(/breaks the contract: accounts\[0\]\.currency: /);
    service.behaviour = 'good';
    const gone = await runMoat(['config', 'validate', '--connect'], { cwd: configDir({ url: 'https://127.0.0.1:1/bank' }) });
    expect(gone.code).toBe(1);
    expect(gone.err).toContain('moat: accounts: accounts.http.url https://127.0.0.1:1/bank: the account service failed (connection_failed) — ECONNREFUSED');
  });

  it("exits 1 when the service's certificate does not chain to accounts.http.caFile", async () => {
    const stranger = await createTestCa([{ CN: ['Another bank'] }]);
    const cwd = configDir({});
    writeFileSync(join(cwd, 'stranger-ca.pem'), stranger.certPem);
    const r = await runMoat(['config', 'validate', '--connect'], { cwd: configDir({ caFile: join(cwd, 'stranger-ca.pem') }) });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/connection_failed\) — (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
  });

  it("exits 1 when the service does not accept Moat's client certificate", async () => {
    const otherCa = await createTestCa([{ CN: ['Not the bank'] }]);
    const impostor = await issueLeaf(otherCa, { subject: [{ CN: ['moat'] }] });
    const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    writeFileSync(join(cwd, 'impostor.pem'), impostor.certPem);
    writeFileSync(join(cwd, 'impostor.key'), impostor.keyPem);
    const r = await runMoat(['config', 'validate', '--connect'], {
      cwd: configDir({ clientCertFile: join(cwd, 'impostor.pem'), clientKeyFile: join(cwd, 'impostor.key') }),
    });
    expect(r.code).toBe(1);
    expect(r.err).toContain('the account service failed (connection_failed)');
  });
});

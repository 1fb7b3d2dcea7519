import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import { parseDuration } from '../../src/cli/certs.ts';
import { describeWithServices } from '../support/databases.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import { runMoat } from '../support/cli.ts';

const moat = (args: string[], cwd: string) => runMoat(args, { cwd });

/*
 * The operator's certificate CLI against a running Moat, through its admin listener (found from the
 * configuration, as an operator's moat.yaml would say): list, show, expiring, revoke — and a
 * revocation from the CLI stops the TPP at the running server at once. It runs on the embedded
 * default too, whose database the CLI could not open while the server holds it. `--direct` reads
 * the database itself, for when the server is stopped.
 */

it('reads durations in days, hours and minutes', () => {
  expect(parseDuration('30d')).toBe(30 * 86400);
  expect(parseDuration('12h')).toBe(12 * 3600);
  expect(parseDuration('90m')).toBe(90 * 60);
  expect(parseDuration('7')).toBe(7 * 86400);
  expect(parseDuration('soon')).toBeUndefined();
});

it('explains its usage', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
  expect((await moat(['certs'], cwd)).code).toBe(2);
  const noReason = await moat(['certs', 'revoke', 'abc'], cwd);
  expect(noReason.code).toBe(2);
  expect(noReason.err).toContain('needs --reason TEXT');
  expect((await moat(['certs', 'expiring', '--within', 'soon'], cwd)).err).toContain('--within takes a duration');
});

describe('moat certs and moat tpps on a running deployment', () => {
  let h: Harness;
  let tpp: RegisteredTpp;
  let cwd: string;
  let thumbprint: string;
  beforeAll(async () => {
    h = await startMoat();
    tpp = await onboardTpp(h, { certificate: { eidas: true } });
    thumbprint = tpp.creds.summary['x5t#S256'] as string;
    cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    // The operator's moat.yaml names the server's data directory: the CLI finds the admin token there.
    writeFileSync(join(cwd, 'moat.yaml'), `issuer: ${h.issuer}\ndataDir: ${h.dataDir}\nadmin: { port: ${h.moat.adminPort} }\n`);
  });
  afterAll(async () => {
    await tpp?.close();
    await h?.close();
  });

  it('lists the certificate with its status, expiry and PSD2 roles', async () => {
    const r = await moat(['certs', 'list'], cwd);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`${thumbprint}\\s+active\\s+\\S+\\s+expires \\d{4}-\\d{2}-\\d{2} \\(36[45] d\\)\\s+PSD2 PSP_AI\\+PSP_PI GB-SBX`));
    const json = JSON.parse((await moat(['certs', 'list', '--status', 'active', '--json'], cwd)).out) as { thumbprint: string; pem?: string }[];
    expect(json.map((c) => c.thumbprint)).toContain(thumbprint);
    expect(json[0]!.pem).toBeUndefined();
  });

  it('shows one certificate with its clients and history', async () => {
    const r = await moat(['certs', 'show', thumbprint], cwd);
    expect(r.code).toBe(0);
    expect(r.out).toContain('PSD2         roles PSP_AI, PSP_PI · NCA Moat Sandbox Authority (GB-SBX)');
    expect(r.out).toContain(`clients      ${tpp.client.client_id}`);
    expect(r.out).toMatch(/history:\n.*registered/);
    const unknown = await moat(['certs', 'show', 'no-such-thumbprint'], cwd);
    expect(unknown.code).toBe(1);
  });

  it('takes a thumbprint that starts with "-" as the thumbprint, not as an option (base64url: "-h…" once printed the usage)', async () => {
    for (const args of [
      ['certs', 'show', '-hNoSuchThumbprint'],
      ['certs', 'show', '--NoSuchThumbprint', '--json'],
      ['certs', 'revoke', '-hNoSuchThumbprint', '--reason', 'test'],
    ]) {
      const r = await moat(args, cwd);
      expect({ args, code: r.code, err: r.err }).toEqual({ args, code: 1, err: `moat: no certificate with thumbprint ${args[2]}\n` });
    }
    // An option of its own where the thumbprint belongs: the thumbprint is missing.
    for (const args of [
      ['certs', 'show', '--json'],
      ['certs', 'revoke', '--reason', 'test'],
      ['certs', 'show', '-h'],
    ]) {
      const r = await moat(args, cwd);
      expect({ args, code: r.code }).toEqual({ args, code: args[2] === '-h' ? 0 : 2 });
    }
  });

  it('reports certificates expiring within a window', async () => {
    expect((await moat(['certs', 'expiring', '--within', '400d'], cwd)).out).toContain(thumbprint);
    expect((await moat(['certs', 'expiring', '--within', '1d'], cwd)).out).toBe('no active certificate expires in that window\n');
  });

  it('lists TPP organisations with their clients and certificates', async () => {
    const r = await moat(['tpps', 'list'], cwd);
    expect(r.out).toContain(`client ${tpp.client.client_id}`);
    expect(r.out).toContain(`cert   ${thumbprint}  active`);
  });

  it('revokes a certificate as the operator: the running server refuses the client at once', async () => {
    const cc = () =>
      oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts' }), {
        [oauth.customFetch]: tpp.fetch,
      });
    expect((await cc()).status).toBe(200);
    const r = await moat(['certs', 'revoke', thumbprint, '--reason', 'private key leaked'], cwd);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`revoked ${thumbprint}`);
    expect((await cc()).status).toBe(401);
    expect((await moat(['certs', 'show', thumbprint], cwd)).out).toMatch(/status\s+revoked since .* \(operator: private key leaked\)/);
    expect((await moat(['certs', 'revoke', thumbprint, '--reason', 'again'], cwd)).out).toContain('was already revoked');
  });

  it("verifies the audit chain and finds the operator's revocation in it", async () => {
    const verify = await moat(['audit', 'verify'], cwd);
    expect(verify.code).toBe(0);
    expect(verify.out).toMatch(/^audit chain intact: \d+ records, head [0-9a-f]{64}\n$/);
    const query = await moat(['audit', 'query', '--type', 'certificate.revoked'], cwd);
    const records = query.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { actor: string; subject: string; detail: { reason: string } });
    expect(records).toEqual([
      expect.objectContaining({ actor: 'operator', subject: thumbprint, detail: { source: 'operator', reason: 'private key leaked' } }),
    ]);
    expect((await moat(['audit', 'query', '--since', 'yesterday-ish'], cwd)).code).toBe(2);
  });

  it('prints what a TPP calls itself with its control characters escaped, never passing them to the terminal', async () => {
    // Registered with the directory's word for its name: an ESC sequence retitling the terminal, colours, an 8-bit CSI,
    // a bidi override that shows what follows backwards, and a zero-width space.
    const name = 'Evil\u001b]0;pwned\u0007\u001b[31m Fintech\u009b2J\u202egnp.exe\u200b';
    const hostile = await onboardTpp(h, { name });
    try {
      for (const args of [
        ['tpps', 'list'],
        ['tpps', 'list', '--json'],
        ['certs', 'list'],
        ['certs', 'list', '--json'],
      ]) {
        const r = await moat(args, cwd);
        expect({ args, code: r.code }).toEqual({ args, code: 0 });
        expect(r.out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\p{Cf}]/u);
      }
      expect((await moat(['tpps', 'list'], cwd)).out).toContain('Evil\\u001b]0;pwned\\u0007\\u001b[31m Fintech\\u009b2J\\u202egnp.exe\\u200b');
      // The escapes are JSON's: --json output still parses, to the name as registered.
      const orgs = JSON.parse((await moat(['tpps', 'list', '--json'], cwd)).out) as { name: string }[];
      expect(orgs.map((o) => o.name)).toContain(name);
    } finally {
      await hostile.close();
    }
  });

  it('says what to do when no server answers', async () => {
    const r = await moat(['certs', 'list', '--admin-url', 'http://127.0.0.1:9'], cwd);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/the admin listener at http:\/\/127\.0\.0\.1:9 cannot be reached .*is Moat running.*add --direct to use the database itself/);
  });
});

describeWithServices('moat certs --direct, reading the database itself', () => {
  let h: Harness;
  let tpp: RegisteredTpp;
  let cwd: string;
  beforeAll(async () => {
    h = await startMoat({ backend: 'services' });
    tpp = await onboardTpp(h);
    cwd = mkdtempSync(join(tmpdir(), 'moat-cli-'));
    // No admin listener where the configuration says: only --direct can answer.
    writeFileSync(
      join(cwd, 'moat.yaml'),
      `issuer: ${h.issuer}\ndataDir: ${join(cwd, 'data')}\nstorage: { postgresUrl: "${h.config.storage.postgresUrl}" }\nadmin: { port: 9 }\n`,
    );
  });
  afterAll(async () => {
    await tpp?.close();
    await h?.close();
  });

  it('lists certificates and TPPs and verifies the audit chain from the database', async () => {
    const thumbprint = tpp.creds.summary['x5t#S256'] as string;
    expect((await moat(['certs', 'list'], cwd)).code).toBe(1);
    expect((await moat(['certs', 'list', '--direct'], cwd)).out).toContain(thumbprint);
    expect((await moat(['tpps', 'list', '--direct'], cwd)).out).toContain(`client ${tpp.client.client_id}`);
    expect((await moat(['audit', 'verify', '--direct'], cwd)).out).toMatch(/^audit chain intact: \d+ records/);
  });
});

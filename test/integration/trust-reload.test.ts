import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { issueSandboxTpp } from '../../src/sandbox/tpp-credentials.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import * as x509 from '../../src/pki/x509.ts';
import { scrapeMetrics } from '../support/admin-metrics.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { createTestCa, issueLeaf, type TestCa } from '../support/pki.ts';
import { issueTpp, tlsFetch } from '../support/tpp-client.ts';

/*
 * Trust material reloaded while running (issue 21): a trust anchor file and a directory's JWKS file
 * changed on disk are picked up without a restart; a changed file that no longer loads keeps the
 * last good material in use, is logged and shows in the metrics; every trust file's age is a metric.
 * The harness's own check interval is an hour: the test asks for each check (`checkNow`).
 */

let h: Harness;
let dir: string;
let anchorsFile: string;
let directoryJwksFile: string;
let otherCa: TestCa;
let newCa: TestCa;
let directoryKey: { privateJwk: Record<string, unknown> & { kid: string; alg: string }; publicJwk: Record<string, unknown> };
const DIRECTORY = 'https://directory.test.example';

/** Replaces a file the way a deployment does: write beside it, rename over it. */
function replaceFile(file: string, content: string): void {
  writeFileSync(`${file}.tmp`, content);
  renameSync(`${file}.tmp`, file);
}

async function directoryKeyPair(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES256' }, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

async function register(
  cert: { certPem: string; keyPem: string },
  serverCaPem: string,
  body: Record<string, unknown>,
): Promise<{ status: number; body: Record<string, any> }> {
  const f = tlsFetch(serverCaPem, cert);
  try {
    const res = await f(`${h.issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  } finally {
    await f.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-trust-'));
  otherCa = await createTestCa([{ CN: ['Some Other TPP CA'] }]);
  newCa = await createTestCa([{ CN: ['Newly Trusted TPP CA'] }]);
  anchorsFile = join(dir, 'anchors.pem');
  writeFileSync(anchorsFile, otherCa.certPem);
  directoryKey = await directoryKeyPair('dir-key-1');
  directoryJwksFile = join(dir, 'directory.jwks.json');
  writeFileSync(directoryJwksFile, JSON.stringify({ keys: [directoryKey.publicJwk] }));
  h = await startMoat({
    config: {
      trustAnchors: [anchorsFile],
      trustFiles: { checkIntervalSeconds: 3600 },
      directories: [{ name: 'Test directory', issuer: DIRECTORY, jwksFile: directoryJwksFile, claimStyle: 'uk-ob' }],
    },
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('trust anchors', () => {
  /** A TPP's credentials with its transport certificate re-issued, same subject, by `ca`. */
  async function tppUnder(ca: TestCa) {
    const creds = await issueTpp(h);
    const cert = await issueLeaf(ca, { subject: new x509.X509Certificate(creds.certPem).subjectName.toJSON() });
    return { creds, cert };
  }

  it('takes a CA added to the trust anchor file while running, at the next check', async () => {
    const { creds, cert } = await tppUnder(newCa);
    const refused = await register(cert, creds.serverCaPem, creds.registration);
    expect(refused.body.error).toBe('invalid_client');
    expect(refused.body.error_description).toMatch(/^the transport certificate is not trusted/);

    replaceFile(anchorsFile, otherCa.certPem + newCa.certPem);
    expect(await h.moat.trustFiles.checkNow()).toEqual({ reloaded: [anchorsFile], failed: [] });
    expect(h.logs).toContainEqual(expect.objectContaining({ event: 'trust.reloaded', kind: 'trust_anchors', file: anchorsFile }));

    const accepted = await register(cert, creds.serverCaPem, creds.registration);
    expect(accepted.body.error_description).toBeUndefined();
    expect(accepted.status).toBe(201);
  });

  it('keeps the last good anchors when the changed file does not load, says so, and recovers when it is fixed', async () => {
    replaceFile(anchorsFile, 'this is no PEM');
    expect(await h.moat.trustFiles.checkNow()).toEqual({ reloaded: [], failed: [anchorsFile] });
    expect(h.logs).toContainEqual(
      expect.objectContaining({
        event: 'trust.reload_failed',
        kind: 'trust_anchors',
        file: anchorsFile,
        reason: expect.stringContaining('no PEM certificate'),
      }),
    );
    expect(await scrapeMetrics(h)).toMatch(new RegExp(`^moat_trust_file_reload_failing\\{kind="trust_anchors",file="${anchorsFile}"\\} 1$`, 'm'));

    const { creds, cert } = await tppUnder(newCa);
    expect((await register(cert, creds.serverCaPem, creds.registration)).status).toBe(201);

    replaceFile(anchorsFile, newCa.certPem);
    expect(await h.moat.trustFiles.checkNow()).toEqual({ reloaded: [anchorsFile], failed: [] });
    expect(await scrapeMetrics(h)).toMatch(new RegExp(`^moat_trust_file_reload_failing\\{kind="trust_anchors",file="${anchorsFile}"\\} 0$`, 'm'));
    // otherCa is gone from the file: its certificates are no longer trusted.
    const gone = await tppUnder(otherCa);
    expect((await register(gone.cert, gone.creds.serverCaPem, gone.creds.registration)).body.error).toBe('invalid_client');
  });
});

describe('directory JWKS files', () => {
  /** Sandbox credentials whose software statement is signed by `key` as the test directory. */
  async function statementSignedBy(key: typeof directoryKey) {
    const material = await ensureSandboxMaterial(h.config.dataDir);
    return issueSandboxTpp(
      { ...material, directory: { ...material.directory, issuer: DIRECTORY, privateJwk: key.privateJwk } },
      { name: 'Directory Fintech', issuer: h.issuer },
    );
  }

  it("takes the directory's rotated keys from its changed JWKS file, at the next check", async () => {
    const rotated = await directoryKeyPair('dir-key-2');
    const tpp = await statementSignedBy(rotated);
    const cert = { certPem: tpp.transportCertPem, keyPem: tpp.transportKeyPem };
    const refused = await register(cert, tpp.serverCaPem, tpp.registration);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_software_statement');

    replaceFile(directoryJwksFile, JSON.stringify({ keys: [directoryKey.publicJwk, rotated.publicJwk] }));
    expect(await h.moat.trustFiles.checkNow()).toEqual({ reloaded: [directoryJwksFile], failed: [] });
    const accepted = await register(cert, tpp.serverCaPem, tpp.registration);
    expect(accepted.body.error_description).toBeUndefined();
    expect(accepted.status).toBe(201);
  });

  it("keeps the directory's last good keys when its changed file is not a public JWKS", async () => {
    replaceFile(directoryJwksFile, JSON.stringify({ keys: [directoryKey.privateJwk] }));
    const check = await h.moat.trustFiles.checkNow();
    expect(check.failed).toContain(directoryJwksFile);
    expect(h.logs).toContainEqual(
      expect.objectContaining({ event: 'trust.reload_failed', kind: 'directory_jwks', reason: expect.stringContaining('holds private key material') }),
    );
    const tpp = await statementSignedBy(directoryKey);
    expect((await register({ certPem: tpp.transportCertPem, keyPem: tpp.transportKeyPem }, tpp.serverCaPem, tpp.registration)).status).toBe(201);
  });
});

it('reports the age of every trust file in use', async () => {
  const metrics = await scrapeMetrics(h);
  expect(metrics).toMatch(new RegExp(`^moat_trust_file_age_seconds\\{kind="trust_anchors",file="${anchorsFile}"\\} \\d+$`, 'm'));
  expect(metrics).toMatch(new RegExp(`^moat_trust_file_age_seconds\\{kind="directory_jwks",file="${directoryJwksFile}"\\} \\d+$`, 'm'));
});

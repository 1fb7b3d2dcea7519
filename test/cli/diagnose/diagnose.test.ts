import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import type { CheckResult } from '../../../src/cli/diagnose/checks.ts';
import type { Diagnosis } from '../../../src/cli/diagnose/report.ts';
import { importSigningKey } from '../../../src/sandbox/certificate-issuing.ts';
import { ensureSandboxMaterial, type SandboxMaterial } from '../../../src/sandbox/sandbox-material.ts';
import { formatDistinguishedName, parseDistinguishedName, toX509Name } from '../../../src/pki/distinguished-name.ts';
import { runMoat } from '../../support/cli.ts';
import { freePort, startMoat, type Harness } from '../../support/moat-harness.ts';
import { createTestCa, issueLeaf, type JsonName, type LeafOptions, type TestCa } from '../../support/pki.ts';
import { tlsFetch } from '../../support/tpp-client.ts';

/*
 * `moat diagnose` against a real Moat over real TLS, one deliberately broken setup per fault: each
 * run must stop at the check that names the fault, with the cause and fix in words a TPP developer
 * acts on. The credentials come from `moat sandbox tpp`, as a TPP gets them.
 */

const DAY = 86_400_000;

let h: Harness;
let material: SandboxMaterial;
let sandboxCa: TestCa;
/** A registered TPP whose setup is right. */
let healthy: { dir: string; clientId: string; registrationToken: string; summary: Record<string, unknown> };

beforeAll(async () => {
  h = await startMoat({ config: { certificates: { revocation: { checkIntervalSeconds: 1 } } } });
  material = await ensureSandboxMaterial(h.config.dataDir);
  sandboxCa = {
    certPem: material.tppCaPem,
    keyPem: material.tppCaKeyPem,
    certificate: new X509Certificate(material.tppCaPem),
    privateKey: importSigningKey(material.tppCaKeyPem) as unknown as TestCa['privateKey'],
    keyAlgorithm: 'ECDSA',
  };
  const dir = await sandboxTpp('Healthy Fintech');
  healthy = { dir, ...(await register(dir)), summary: JSON.parse(readFileSync(join(dir, 'tpp.json'), 'utf8')) as Record<string, unknown> };
});

afterAll(async () => {
  await h?.close();
});

/** `moat sandbox tpp --out DIR` for this server, as a TPP runs it. */
async function sandboxTpp(name: string, extra: string[] = []): Promise<string> {
  const r = await runMoat(['sandbox', 'tpp', '--name', name, '--out', 'creds', ...extra], { env: { MOAT_DATA_DIR: h.dataDir, MOAT_ISSUER: h.issuer } });
  if (r.code !== 0) throw new Error(`moat sandbox tpp failed: ${r.err}`);
  return join(r.cwd, 'creds');
}

/** RFC 7591 registration over mTLS with the directory's registration.json (and overrides). */
async function register(dir: string, overrides: Record<string, unknown> = {}): Promise<{ clientId: string; registrationToken: string }> {
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const f = tlsFetch(read('server-ca.pem'), { certPem: read('transport.pem'), keyPem: read('transport.key') });
  try {
    const res = await f(`${h.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...JSON.parse(read('registration.json')), ...overrides }),
    });
    const body = (await res.json()) as Record<string, string>;
    if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(body)}`);
    return { clientId: body.client_id!, registrationToken: body.registration_access_token! };
  } finally {
    await f.close();
  }
}

/** A certificate of the sandbox TPP CA (or `ca`) written to PEM files; returns the --cert/--key flags. */
async function certificateFiles(options: LeafOptions, ca: TestCa = sandboxCa): Promise<string[]> {
  const leaf = await issueLeaf(ca, options);
  const dir = mkdtempSync(join(tmpdir(), 'moat-diagnose-'));
  writeFileSync(join(dir, 'cert.pem'), leaf.certPem);
  writeFileSync(join(dir, 'key.pem'), leaf.keyPem);
  return ['--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')];
}

const someSubject: JsonName = [{ C: ['GB'] }, { O: ['Diagnosed Fintech'] }, { CN: ['diagnosed'] }];

/** Runs `moat diagnose` in text form. */
async function diagnose(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runMoat(['diagnose', ...args]);
}

/** Runs `moat diagnose --json` and parses what it prints. */
async function diagnoseJson(args: string[]): Promise<{ code: number; result: Diagnosis; check: (id: string) => CheckResult }> {
  const r = await runMoat(['diagnose', '--json', ...args]);
  const result = JSON.parse(r.out) as Diagnosis;
  return { code: r.code, result, check: (id) => result.checks.find((c) => c.id === id)! };
}

/** The failing check's id as the text report prints it. */
const failedCheck = (out: string) => /^ {6}check: {2}(\S+)$/m.exec(out)?.[1];

describe('moat diagnose', () => {
  it('passes every check for a healthy setup and verifies the token is bound to the certificate', async () => {
    const { code, result, check } = await diagnoseJson(['--credentials', healthy.dir, '--client-id', healthy.clientId]);
    expect(code).toBe(0);
    expect(result.ok).toBe(true);
    expect(result.failed).toBeUndefined();
    expect(result.checks.map((c) => [c.id, c.status])).toEqual(
      [
        'server-reachable',
        'server-trusted',
        'discovery',
        'certificate-readable',
        'key-matches-certificate',
        'certificate-validity',
        'client-auth-eku',
        'trust-anchor',
        'revocation',
        'client-authentication',
        'software-statement',
        'signing-key',
        'pushed-authorization',
        'token-binding',
      ].map((id) => [id, 'pass']),
    );
    expect(check('token-binding')).toEqual(
      expect.objectContaining({
        details: expect.objectContaining({ certificateThumbprint: healthy.summary['x5t#S256'], tokenThumbprint: healthy.summary['x5t#S256'] }),
      }),
    );
    expect(check('software-statement')).toEqual(expect.objectContaining({ details: expect.objectContaining({ signature: 'verified' }) }));

    const text = await diagnose(['--credentials', healthy.dir, '--client-id', healthy.clientId]);
    expect(text.code).toBe(0);
    expect(text.out).toContain(`the access token is bound to this certificate: cnf.x5t#S256 = ${String(healthy.summary['x5t#S256'])}`);
    expect(text.out).toMatch(/All checks passed\.\n$/);
  });

  it('exits 2 on bad usage', async () => {
    expect((await diagnose(['--cert', 'x.pem', '--key', 'x.key'])).code).toBe(2);
    expect((await diagnose(['--issuer', 'http://localhost:8443', '--cert', 'x.pem', '--key', 'x.key'])).err).toContain('must be an https URL');
    expect((await diagnose(['--issuer', h.issuer, '--frobnicate'])).code).toBe(2);
  });

  it('says the server knows no such client, taking a client id that begins with "-" as a value', async () => {
    // oidc-provider's client ids are base64url: a leading "-" is as likely as any other character.
    const r = await diagnose(['--credentials', healthy.dir, '--client-id', '-no-such-client']);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('client-authentication');
    expect(r.out).toContain('the server refused client -no-such-client');
    expect(r.out).toContain('the server has no client -no-such-client, or it does not authenticate with tls_client_auth');
  });

  it('names a server nobody listens for as unreachable (connection refused)', async () => {
    const r = await diagnose(['--issuer', `https://localhost:${await freePort()}`, '--credentials', healthy.dir]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('server-reachable');
    expect(r.out).toContain('connection refused');
  });

  it('names the issuer of an untrusted server certificate and the CA file to pass with --ca', async () => {
    const flags = ['--issuer', h.issuer, '--cert', join(healthy.dir, 'transport.pem'), '--key', join(healthy.dir, 'transport.key')];
    const r = await diagnose(flags);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('server-trusted');
    expect(r.out).toContain("is issued by CN=Moat Sandbox Server CA, O=Moat Sandbox, C=GB, which is not among the system's CAs");
    expect(r.out).toMatch(
      /fix: +pass the CA certificate of CN=Moat Sandbox Server CA, O=Moat Sandbox, C=GB with --ca FILE — for the Moat sandbox that is server-ca.pem/,
    );
    // The wrong CA file: the TPP CA instead of the server CA.
    const wrong = await diagnose([...flags, '--ca', material.tppCaCertFile]);
    expect(failedCheck(wrong.out)).toBe('server-trusted');
    expect(wrong.out).toContain(`which is not among ${material.tppCaCertFile} (CN=Moat Sandbox TPP CA, O=Moat Sandbox, C=GB)`);
  });

  it('says when there is no certificate, or none it can read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-diagnose-'));
    for (const file of readdirSync(healthy.dir).filter((f) => f !== 'transport.pem')) copyFileSync(join(healthy.dir, file), join(dir, file));
    const missing = await diagnose(['--credentials', dir]);
    expect(missing.code).toBe(1);
    expect(failedCheck(missing.out)).toBe('certificate-readable');
    expect(missing.out).toContain(`cannot read the certificate ${join(dir, 'transport.pem')}: there is no such file`);

    writeFileSync(join(dir, 'transport.pem'), 'not a certificate\n');
    const garbage = await diagnose(['--credentials', dir]);
    expect(failedCheck(garbage.out)).toBe('certificate-readable');
    expect(garbage.out).toContain('holds no PEM certificate');
  });

  it("refuses a private key that is not the certificate's", async () => {
    const other = await sandboxTpp('Other Fintech');
    const r = await diagnose(['--credentials', healthy.dir, '--key', join(other, 'transport.key')]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('key-matches-certificate');
    expect(r.out).toContain('the private key does not belong to the certificate');
    expect(r.out).toContain(`the public key of ${join(other, 'transport.key')} (ec) differs from the public key in ${join(healthy.dir, 'transport.pem')}`);
  });

  it('stops at an expired certificate before presenting it', async () => {
    const notAfter = new Date(Date.now() - DAY);
    const r = await diagnose([
      '--credentials',
      healthy.dir,
      ...(await certificateFiles({ subject: someSubject, notBefore: new Date(Date.now() - 400 * DAY), notAfter })),
    ]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('certificate-validity');
    expect(r.out).toContain(`the certificate has expired`);
    expect(r.out).toContain(`it expired on ${new Date(Math.floor(notAfter.getTime() / 1000) * 1000).toISOString()}`);
    expect(r.out).toContain('get a new transport certificate from your directory');
  });

  it('stops at a certificate that is not valid yet, naming the date and the clock', async () => {
    const notBefore = new Date(Date.now() + 3 * DAY);
    const r = await diagnose(['--credentials', healthy.dir, ...(await certificateFiles({ subject: someSubject, notBefore }))]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('certificate-validity');
    expect(r.out).toContain('the certificate is not valid yet');
    expect(r.out).toContain(`it is valid from ${new Date(Math.floor(notBefore.getTime() / 1000) * 1000).toISOString()}`);
    expect(r.out).toContain('clock');
  });

  it('refuses a certificate whose extended key usage lacks clientAuth', async () => {
    const r = await diagnose(['--credentials', healthy.dir, ...(await certificateFiles({ subject: someSubject, eku: ['serverAuth'] }))]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('client-auth-eku');
    expect(r.out).toContain('its extended key usage (1.3.6.1.5.5.7.3.1) lacks clientAuth (1.3.6.1.5.5.7.3.2)');
  });

  it('names the trust anchors the server accepts when the chain ends at an unknown CA', async () => {
    const unknownCa = await createTestCa([{ C: ['GB'] }, { O: ['Elsewhere'] }, { CN: ['Unknown TPP CA'] }]);
    const r = await diagnose(['--credentials', healthy.dir, ...(await certificateFiles({ subject: someSubject }, unknownCa))]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('trust-anchor');
    expect(r.out).toContain("the server does not accept the certificate's chain");
    expect(r.out).toContain(
      'the server says: no path from the certificate (issuer CN=Unknown TPP CA, O=Elsewhere, C=GB) to a trust anchor this server accepts',
    );
    // From the server's TLS CertificateRequest.
    expect(r.out).toContain('The server accepts client certificates issued under: CN=Moat Sandbox TPP CA, O=Moat Sandbox, C=GB');
    expect(r.out).toContain('or ask the bank to add CN=Unknown TPP CA, O=Elsewhere, C=GB as a trust anchor');
  });

  it('reports a certificate its CA revoked: get a new one from the directory', async () => {
    const dir = await sandboxTpp('Revoked Fintech');
    const { clientId } = await register(dir);
    const revoked = await runMoat(
      [
        'sandbox',
        'revoke',
        '--cert',
        join(dir, 'transport.pem'),
        '--key',
        join(dir, 'transport.key'),
        '--issuer',
        h.issuer,
        '--ca',
        join(dir, 'server-ca.pem'),
      ],
      { env: { MOAT_DATA_DIR: h.dataDir } },
    );
    expect(revoked.code).toBe(0);
    const thumbprint = (JSON.parse(readFileSync(join(dir, 'tpp.json'), 'utf8')) as Record<string, string>)['x5t#S256']!;
    // The revocation monitor asks the sandbox OCSP responder every second (checkIntervalSeconds: 1).
    const until = Date.now() + 30_000;
    while ((await h.moat.certificates.registry.statusOf(thumbprint))?.status !== 'revoked') {
      if (Date.now() > until) throw new Error('Moat did not learn of the revocation within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const r = await diagnose(['--credentials', dir, '--client-id', clientId]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('revocation');
    expect(r.out).toContain(`the server says: the client certificate has been revoked (x5t#S256 ${thumbprint})`);
    expect(r.out).toContain('revoked: get a new certificate from your directory');
  });

  it('shows both subject DNs, RFC 4514-normalised, and the differing attribute on a subject mismatch', async () => {
    const registeredDn = String(healthy.summary.tls_client_auth_subject_dn);
    const certificateDn = parseDistinguishedName(registeredDn).map((rdn) =>
      rdn.map((a) => (a.type === '2.5.4.3' ? { ...a, value: 'sbx-sw-someone-else' } : a)),
    );
    const flags = ['--credentials', healthy.dir, '--client-id', healthy.clientId, ...(await certificateFiles({ subject: toX509Name(certificateDn) }))];

    const { code, result, check } = await diagnoseJson(flags);
    expect(code).toBe(1);
    expect(result.failed).toBe('client-authentication');
    expect(check('trust-anchor').status).toBe('pass');
    expect(check('software-statement').status).toBe('not-run');
    expect(check('client-authentication')).toEqual(
      expect.objectContaining({
        status: 'fail',
        summary: "the certificate's subject DN is not the registered one",
        details: expect.objectContaining({
          certificateSubjectDn: formatDistinguishedName(certificateDn),
          serverSawSubjectDn: formatDistinguishedName(certificateDn),
          registeredSubjectDn: registeredDn,
          registeredSource: expect.stringContaining('registration.json'),
          differingAttributes: ['CN'],
        }),
      }),
    );

    // With the registration access token the registered DN is read from the server (RFC 7592).
    const text = await diagnose([...flags, '--registration-token', healthy.registrationToken]);
    expect(failedCheck(text.out)).toBe('client-authentication');
    expect(text.out).toContain(`certificate subject (the server saw): ${formatDistinguishedName(certificateDn)}`);
    expect(text.out).toContain(`registered subject, registered at the server (RFC 7592 read with --registration-token): ${registeredDn}`);
    expect(text.out).toContain(`differing attribute: CN — expected CN=${String(healthy.summary.software_id)}, the certificate has CN=sbx-sw-someone-else`);
  });

  it('stops at an expired software statement', async () => {
    const claims = decodeJwt(readFileSync(join(healthy.dir, 'ssa.jwt'), 'utf8').trim());
    const key = material.directory.privateJwk;
    const exp = Math.floor(Date.now() / 1000) - 3600;
    const expired = await new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuedAt(exp - 86_400)
      .setExpirationTime(exp)
      .sign(await importJWK(key, key.alg));
    const file = join(mkdtempSync(join(tmpdir(), 'moat-diagnose-')), 'expired.jwt');
    writeFileSync(file, expired);
    const r = await diagnose(['--credentials', healthy.dir, '--client-id', healthy.clientId, '--ssa', file]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('software-statement');
    expect(r.out).toContain(`the software statement has expired`);
    expect(r.out).toContain(`its exp is ${new Date(exp * 1000).toISOString()}`);
    expect(r.out).toContain('fetch a new software statement from your directory');
  });

  it("stops at a software statement whose signature does not verify with the directory's keys", async () => {
    const jwt = readFileSync(join(healthy.dir, 'ssa.jwt'), 'utf8').trim();
    const { privateKey } = await generateKeyPair('ES256');
    // Same claims and kid, another key: what an edited or re-signed SSA looks like.
    const forged = await new SignJWT(decodeJwt(jwt)).setProtectedHeader({ alg: 'ES256', kid: material.directory.privateJwk.kid, typ: 'JWT' }).sign(privateKey);
    const file = join(mkdtempSync(join(tmpdir(), 'moat-diagnose-')), 'forged.jwt');
    writeFileSync(file, forged);
    const r = await diagnose(['--credentials', healthy.dir, '--client-id', healthy.clientId, '--ssa', file]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('software-statement');
    expect(r.out).toContain("the software statement's signature does not verify");
    expect(r.out).toContain('use the SSA exactly as the directory issued it');
  });

  it("stops at a scope the software statement's roles do not allow", async () => {
    const r = await diagnose(['--credentials', healthy.dir, '--client-id', healthy.clientId, '--scope', 'openid fundsconfirmations']);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('software-statement');
    expect(r.out).toContain("the software statement's roles do not allow scope fundsconfirmations");
    expect(r.out).toContain('scope fundsconfirmations needs the role CBPII');
  });

  it("stops at a signing key that is not among the software statement's keys", async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const file = join(mkdtempSync(join(tmpdir(), 'moat-diagnose-')), 'other.jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), kid: 'not-in-the-ssa', alg: 'ES256', use: 'sig' }] }));
    const r = await diagnose(['--credentials', healthy.dir, '--client-id', healthy.clientId, '--signing-key', file]);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('signing-key');
    expect(r.out).toContain("the key not-in-the-ssa is not among the SSA's software_jwks");
  });

  it("stops at a scope the client did not register (registration metadata), with the PAR's answer", async () => {
    const dir = await sandboxTpp('Accounts Only Fintech');
    const { clientId } = await register(dir, { scope: 'openid accounts' });
    const r = await diagnose(['--credentials', dir, '--client-id', clientId, '--scope', 'openid payments']);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('pushed-authorization');
    expect(r.out).toContain('the scope is not allowed for this client');
    expect(r.out).toMatch(/PASS {2}software statement/);
  });

  it('stops at a redirect URI the software statement does not list', async () => {
    const r = await diagnose(['--credentials', healthy.dir, '--client-id', healthy.clientId, '--redirect-uri', 'https://tpp.example/elsewhere']);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('software-statement');
    expect(r.out).toContain("https://tpp.example/elsewhere is not among the SSA's software_redirect_uris (https://localhost:3000/callback)");
  });

  it('shows the PAR error_description for a redirect URI the client did not register', async () => {
    const dir = await sandboxTpp('Two Callbacks Fintech', [
      '--redirect-uri',
      'https://localhost:3000/callback',
      '--redirect-uri',
      'https://localhost:3000/second',
    ]);
    const { clientId } = await register(dir, { redirect_uris: ['https://localhost:3000/callback'] });
    const r = await diagnose(['--credentials', dir, '--client-id', clientId, '--redirect-uri', 'https://localhost:3000/second']);
    expect(r.code).toBe(1);
    expect(failedCheck(r.out)).toBe('pushed-authorization');
    expect(r.out).toContain('the redirect URI is not registered for this client');
    expect(r.out).toContain("the server answered invalid_request: redirect_uri did not match any of the client's registered redirect_uris");
    expect(r.out).toMatch(/PASS {2}software statement/);
  });
});

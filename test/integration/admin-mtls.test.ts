import { mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAdminCredentials } from '../../src/admin/operator-authentication.ts';
import { ConfigError, validateConfig } from '../../src/config/load.ts';
import { adminRequest } from '../support/admin-api.ts';
import { runMoat } from '../support/cli.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { createTestCa, issueLeaf, type JsonName, type TestCa, type TestCertificate } from '../support/pki.ts';
import { onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import * as x509 from '../../src/pki/x509.ts';

/*
 * Operator-certificate mTLS on the admin listener (issue 5): HTTPS, a client certificate from an
 * operator CA — within its validity, for clientAuth, with a listed subject — or the admin token;
 * anything else is refused with the reason. What an operator changes is audited under their
 * certificate's subject, and the CLI gets there with --admin-cert/--admin-key/--admin-ca.
 */

const DAY = 86_400_000;
const TOKEN = 'operator-token-for-the-mtls-test-0123456789';
const ALICE: JsonName = [{ C: ['GB'] }, { O: ['Moat Bank'] }, { OU: ['Operations'] }, { CN: ['alice'] }];
// Listed in another case and spacing: subjects compare by RFC 4517 distinguishedNameMatch.
const ALICE_LISTED = 'cn=Alice,ou=operations ,  O=MOAT BANK, c=gb';
const ALICE_DN = 'CN=alice, OU=Operations, O=Moat Bank, C=GB';

let h: Harness;
let tpp: RegisteredTpp;
let dir: string;
let serverCa: TestCa;
let operatorCa: TestCa;
let crlFile: string;
const operator: Record<
  'alice' | 'aliceOldLaptop' | 'aliceNewLaptop' | 'fromCaWithoutCrl' | 'otherCa' | 'expired' | 'notYetValid' | 'mallory' | 'serverOnly',
  TestCertificate
> = {} as never;
const file = (name: string, content: string) => {
  writeFileSync(join(dir, name), content);
  return join(dir, name);
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-admin-mtls-'));
  serverCa = await createTestCa([{ C: ['GB'] }, { O: ['Moat Bank'] }, { CN: ['Admin Listener CA'] }]);
  const serverCert = await issueLeaf(serverCa, { subject: [{ CN: ['moat-admin'] }], eku: ['serverAuth'], san: { ip: ['127.0.0.1'], dns: ['localhost'] } });
  operatorCa = await createTestCa([{ C: ['GB'] }, { O: ['Moat Bank'] }, { CN: ['Operator CA'] }]);
  const otherCa = await createTestCa([{ C: ['GB'] }, { O: ['Somebody Else'] }, { CN: ['Other CA'] }]);
  operator.alice = await issueLeaf(operatorCa, { subject: ALICE });
  operator.otherCa = await issueLeaf(otherCa, { subject: ALICE });
  operator.expired = await issueLeaf(operatorCa, { subject: ALICE, notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - DAY) });
  operator.notYetValid = await issueLeaf(operatorCa, { subject: ALICE, notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 30 * DAY) });
  operator.mallory = await issueLeaf(operatorCa, { subject: [{ C: ['GB'] }, { O: ['Moat Bank'] }, { OU: ['Operations'] }, { CN: ['mallory'] }] });
  operator.serverOnly = await issueLeaf(operatorCa, { subject: ALICE, eku: ['serverAuth'] });
  operator.aliceOldLaptop = await issueLeaf(operatorCa, { subject: ALICE });
  operator.aliceNewLaptop = await issueLeaf(operatorCa, { subject: ALICE });
  crlFile = file('operator-ca.crl', await operatorCrl([operator.aliceOldLaptop]));
  // A second operator CA that publishes no CRL to Moat.
  const uncheckedCa = await createTestCa([{ C: ['GB'] }, { O: ['Moat Bank'] }, { CN: ['Operator CA 2'] }]);
  operator.fromCaWithoutCrl = await issueLeaf(uncheckedCa, { subject: ALICE });
  h = await startMoat({
    config: {
      admin: {
        port: 0,
        tokenFile: file('admin.token', TOKEN),
        tls: {
          certFile: file('admin.pem', serverCert.certPem),
          keyFile: file('admin.key', serverCert.keyPem),
          clientCaFiles: [file('operator-ca.pem', operatorCa.certPem), file('operator-ca-2.pem', uncheckedCa.certPem)],
          allowedSubjects: [ALICE_LISTED],
          crlFiles: [crlFile],
        },
      },
    },
  });
  tpp = await onboardTpp(h);
});
afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

/** A CRL of the operator CA listing these certificates (PEM), current unless `nextUpdate` says otherwise. */
async function operatorCrl(revoked: TestCertificate[], options: { nextUpdate?: Date; signer?: TestCa } = {}): Promise<string> {
  const signer = options.signer ?? operatorCa;
  const crl = await x509.X509CrlGenerator.create({
    issuer: new x509.X509Certificate(signer.certificate.raw).subject,
    thisUpdate: new Date(Date.now() - 3_600_000),
    nextUpdate: options.nextUpdate ?? new Date(Date.now() + DAY),
    entries: revoked.map((c) => ({
      serialNumber: c.certificate.serialNumber,
      revocationDate: new Date(Date.now() - 60_000),
      reason: x509.X509CrlReason.keyCompromise,
    })),
    signingKey: signer.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return crl.toString('pem');
}

/** Publishes a new CRL the way a PKI's job would: the file is replaced and its mtime moves on. */
let published = 0;
function publishCrl(pem: string): void {
  writeFileSync(crlFile, pem);
  published += 1;
  const at = new Date(Date.now() + published * 1000);
  utimesSync(crlFile, at, at);
}

function admin(
  method: 'GET' | 'POST',
  path: string,
  as: { cert?: TestCertificate; token?: string } = {},
  body?: unknown,
): Promise<{ status: number; body: any }> {
  return adminRequest(h.moat.adminPort!, method, path, {
    tls: { ca: serverCa.certPem, ...(as.cert === undefined ? {} : { cert: as.cert.certPem, key: as.cert.keyPem }) },
    ...(as.token === undefined ? {} : { token: as.token }),
    ...(body === undefined ? {} : { body }),
  });
}

describe('operator authentication on the admin listener', () => {
  it('serves an operator whose certificate chains to an operator CA and whose subject is allowed', async () => {
    const res = await admin('GET', '/tpps', { cert: operator.alice });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(expect.arrayContaining([expect.objectContaining({ clients: [expect.objectContaining({ clientId: tpp.client.client_id })] })]));
  });

  it.each([
    ['no certificate and no token', 'certificate_required', {}, /operator client certificate \(TLS\) or its bearer token/],
    [
      'a certificate from a CA that is not an operator CA',
      'certificate_untrusted',
      { cert: 'otherCa' },
      /operator certificate CN=alice, OU=Operations, O=Moat Bank, C=GB: no path .* to a trust anchor/,
    ],
    ['an expired operator certificate', 'certificate_expired', { cert: 'expired' }, /the certificate expired on \d{4}-/],
    ['an operator certificate that is not valid yet', 'certificate_not_yet_valid', { cert: 'notYetValid' }, /is not valid before \d{4}-/],
    [
      'an operator certificate whose subject is not listed',
      'subject_not_allowed',
      { cert: 'mallory' },
      /CN=mallory, OU=Operations, O=Moat Bank, C=GB is not in admin\.tls\.allowedSubjects/,
    ],
    ['an operator certificate not for client authentication', 'certificate_not_for_client_auth', { cert: 'serverOnly' }, /does not include clientAuth/],
    [
      'an operator certificate from an operator CA with no CRL configured',
      'certificate_status_unknown',
      { cert: 'fromCaWithoutCrl' },
      /no CRL in admin\.tls\.crlFiles is of its issuer CN=Operator CA 2, O=Moat Bank, C=GB/,
    ],
    [
      "an operator certificate on the operator CA's CRL",
      'certificate_revoked',
      { cert: 'aliceOldLaptop' },
      /operator certificate CN=alice, OU=Operations, O=Moat Bank, C=GB: serial [0-9a-f]+ was revoked on \d{4}-.* according to .*operator-ca\.crl/,
    ],
    ['a wrong token without a certificate', 'invalid_token', { token: 'guess' }, /not the admin token/],
  ] as const)('refuses %s with 401 %s', async (_case, error, as, description) => {
    const res = await admin('GET', '/tpps', { ...('cert' in as ? { cert: operator[as.cert] } : {}), ...('token' in as ? { token: as.token } : {}) });
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error, error_description: expect.stringMatching(description) });
    expect(JSON.stringify(res.body)).not.toContain('clients');
    expect(h.logs).toEqual(expect.arrayContaining([expect.objectContaining({ event: 'admin.unauthorized', outcome: error })]));
  });

  it('takes the admin token instead of a certificate when both are configured', async () => {
    expect((await admin('GET', '/audit/verify', { token: TOKEN })).status).toBe(200);
  });

  it('audits a quarantine under the certificate subject, and a release under admin-token', async () => {
    const id = tpp.client.client_id;
    const quarantined = await admin('POST', `/clients/${id}/quarantine`, { cert: operator.alice }, { reason: 'fraud team: suspected compromise' });
    expect(quarantined.status).toBe(200);
    expect(quarantined.body).toEqual(expect.objectContaining({ kind: 'quarantine', createdBy: ALICE_DN }));
    const released = await admin('POST', `/clients/${id}/release`, { token: TOKEN }, { reason: 'TPP rotated its keys' });
    expect(released.body).toEqual(expect.objectContaining({ releasedBy: 'admin-token' }));
    const audit = await admin('GET', `/audit?client=${id}`, { cert: operator.alice });
    expect(audit.body).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'client.quarantined', actor: 'operator', actorId: ALICE_DN }),
        expect.objectContaining({ type: 'client.released', actor: 'operator', actorId: 'admin-token' }),
      ]),
    );
  });
});

describe('operator certificate revocation (admin.tls.crlFiles)', () => {
  afterEach(async () => {
    publishCrl(await operatorCrl([operator.aliceOldLaptop]));
  });

  it('locks an operator out on their next request once a CRL listing them is published, and lets them back when it no longer does', async () => {
    expect((await admin('GET', '/tpps', { cert: operator.aliceNewLaptop })).status).toBe(200);
    publishCrl(await operatorCrl([operator.aliceOldLaptop, operator.aliceNewLaptop]));
    const refused = await admin('GET', '/tpps', { cert: operator.aliceNewLaptop });
    expect(refused).toEqual({
      status: 401,
      body: {
        error: 'certificate_revoked',
        error_description: expect.stringContaining(`serial ${operator.aliceNewLaptop.certificate.serialNumber.toLowerCase()}`),
      },
    });
    // Another certificate of the same operator CA is unaffected, and so is the token.
    expect((await admin('GET', '/tpps', { cert: operator.alice })).status).toBe(200);
    expect((await admin('GET', '/tpps', { token: TOKEN })).status).toBe(200);
    publishCrl(await operatorCrl([operator.aliceOldLaptop]));
    expect((await admin('GET', '/tpps', { cert: operator.aliceNewLaptop })).status).toBe(200);
  });

  it.each([
    ['past its nextUpdate', async () => operatorCrl([], { nextUpdate: new Date(Date.now() - 60_000) }), /was due for renewal at \d{4}-/],
    ['replaced by something that is not a CRL', async () => '-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n', /cannot be used/],
    [
      'signed by another key',
      async () => operatorCrl([], { signer: { ...operatorCa, privateKey: (await createTestCa([{ CN: ['Impostor'] }])).privateKey } }),
      /signature does not verify/,
    ],
  ])("fails closed when the CRL is %s: the CA's certificates are refused, the token still works", async (_case, crl, description) => {
    publishCrl(await crl());
    expect(await admin('GET', '/tpps', { cert: operator.alice })).toEqual({
      status: 401,
      body: { error: 'certificate_status_unknown', error_description: expect.stringMatching(description) },
    });
    expect((await admin('GET', '/tpps', { token: TOKEN })).status).toBe(200);
    publishCrl(await operatorCrl([operator.aliceOldLaptop]));
    expect((await admin('GET', '/tpps', { cert: operator.alice })).status).toBe(200);
  });
});

describe('moat certs through an mTLS admin listener', () => {
  const cli = (args: string[], creds: string[]) =>
    runMoat([...args, '--admin-url', `https://localhost:${h.moat.adminPort}`, ...creds], { env: { MOAT_ISSUER: h.issuer } });
  const as = (cert: TestCertificate, name: string) => ['--admin-cert', file(`${name}.pem`, cert.certPem), '--admin-key', file(`${name}.key`, cert.keyPem)];
  const trustingServer = () => ['--admin-ca', file('server-ca.pem', serverCa.certPem)];

  it('revokes a certificate as the operator, audited under their certificate subject', async () => {
    const thumbprint = tpp.creds.summary['x5t#S256'] as string;
    const listed = await cli(['certs', 'list', '--json'], [...as(operator.alice, 'alice'), ...trustingServer()]);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.out) as { thumbprint: string }[]).map((c) => c.thumbprint)).toContain(thumbprint);
    const revoked = await cli(['certs', 'revoke', thumbprint, '--reason', 'key compromise'], [...as(operator.alice, 'alice'), ...trustingServer()]);
    expect(revoked).toEqual(expect.objectContaining({ code: 0, out: expect.stringContaining(`revoked ${thumbprint}`) }));
    const actions = await cli(['audit', 'query', '--type', 'admin.action'], [...as(operator.alice, 'alice'), ...trustingServer()]);
    expect(
      actions.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ actorId: ALICE_DN, detail: { action: 'certificate.revoke', thumbprint, reason: 'key compromise', changed: true } }),
      ]),
    );
  });

  it('tells the operator to present a certificate when they did not', async () => {
    const r = await cli(['tpps', 'list'], trustingServer());
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/401 certificate_required: .*give your operator certificate with --admin-cert FILE --admin-key FILE/);
  });

  it("tells the operator which CA flag to pass when the admin listener's certificate is not trusted", async () => {
    const r = await cli(['audit', 'verify'], as(operator.alice, 'alice'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/presented a certificate this CLI does not trust .*--admin-ca FILE/);
  });

  it('reminds the operator that the listener speaks https when given an http URL', async () => {
    const r = await runMoat(['tpps', 'list', '--admin-url', `http://127.0.0.1:${h.moat.adminPort}`], { env: { MOAT_ISSUER: h.issuer } });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot be reached .*With admin\.tls the URL is https:\/\//);
  });

  it('refuses an expired operator certificate from the CLI too', async () => {
    const r = await cli(['audit', 'verify'], [...as(operator.expired, 'expired'), ...trustingServer()]);
    expect(r).toEqual(expect.objectContaining({ code: 1, err: expect.stringMatching(/401 certificate_expired/) }));
  });
});

describe('admin listener configuration', () => {
  const production = (admin: Record<string, unknown>) => {
    try {
      validateConfig({ mode: 'production', issuer: 'https://as.example', admin }, 'test', dir);
      return [];
    } catch (err) {
      return (err as ConfigError).problems;
    }
  };
  const MESSAGE = 'admin.tokenFile or admin.tls: one is required in production — the admin listener needs operator authentication wherever it binds';

  it('refuses in production an admin listener with neither token nor operator mTLS, on loopback too', () => {
    expect(production({ host: '0.0.0.0' })).toContain(MESSAGE);
    // A web page in a browser on the host reaches loopback as well.
    expect(production({ host: '127.0.0.1' })).toContain(MESSAGE);
    expect(production({ host: 'localhost' })).toContain(MESSAGE);
    expect(production({ host: '127.0.0.1', enabled: false })).not.toContain(MESSAGE);
    expect(production({ host: '127.0.0.1', tokenFile: 'admin.token' })).not.toContain(MESSAGE);
    expect(production({ host: '0.0.0.0', tokenFile: 'admin.token' })).not.toContain(MESSAGE);
    expect(production({ host: '0.0.0.0', tls: { certFile: 'a.pem', keyFile: 'a.key', clientCaFiles: ['ca.pem'] } })).not.toContain(MESSAGE);
  });

  it('stops start-up naming the key when an operator CA file holds no CA, or a file is missing', async () => {
    const tls = { certFile: join(dir, 'admin.pem'), keyFile: join(dir, 'admin.key'), clientCaFiles: [join(dir, 'admin.pem')] };
    await expect(loadAdminCredentials({ enabled: true, host: '127.0.0.1', port: 0, allowedHosts: [], tls })).rejects.toThrow(
      /^admin\.tls\.clientCaFiles: trust anchor .*admin\.pem: CN=moat-admin is not a CA certificate/,
    );
    await expect(
      loadAdminCredentials({
        enabled: true,
        host: '127.0.0.1',
        port: 0,
        allowedHosts: [],
        tls: { ...tls, clientCaFiles: [join(dir, 'operator-ca.pem')], keyFile: join(dir, 'missing.key') },
      }),
    ).rejects.toThrow(/^admin\.tls\.keyFile: cannot read .*missing\.key/);
  });

  it('stops start-up naming the key when an operator CRL is not a CRL, or not of an operator CA', async () => {
    const tls = { certFile: join(dir, 'admin.pem'), keyFile: join(dir, 'admin.key'), clientCaFiles: [join(dir, 'operator-ca.pem')] };
    const stranger = await createTestCa([{ C: ['GB'] }, { O: ['Somebody Else'] }, { CN: ['Stranger CA'] }]);
    const foreign = file('foreign.crl', await operatorCrl([], { signer: stranger }));
    await expect(
      loadAdminCredentials({ enabled: true, host: '127.0.0.1', port: 0, allowedHosts: [], tls: { ...tls, crlFiles: [crlFile, foreign] } }),
    ).rejects.toThrow(
      /^admin\.tls\.crlFiles\.1: .*foreign\.crl: the CRL is issued by CN=Stranger CA, O=Somebody Else, C=GB, which is none of admin\.tls\.clientCaFiles/,
    );
    await expect(
      loadAdminCredentials({ enabled: true, host: '127.0.0.1', port: 0, allowedHosts: [], tls: { ...tls, crlFiles: [join(dir, 'admin.pem')] } }),
    ).rejects.toThrow(/^admin\.tls\.crlFiles\.0: .*admin\.pem: /);
  });

  it('names an allowed subject that is not a distinguished name', () => {
    expect(() =>
      validateConfig(
        { admin: { tls: { certFile: 'a.pem', keyFile: 'a.key', clientCaFiles: ['ca.pem'], allowedSubjects: ['CN=ok', 'no equals sign'] } } },
        'test',
        dir,
      ),
    ).toThrow(/admin\.tls\.allowedSubjects\.1: "no equals sign" is not an RFC 4514 distinguished name/);
  });
});

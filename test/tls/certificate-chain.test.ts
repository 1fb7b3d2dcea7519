import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certificateThumbprint, loadTrustAnchors, MAX_CHAIN_DEPTH, verifyCertificateChain, type TrustAnchors } from '../../src/tls/certificate-chain.ts';
import { createIntermediateCa, createSelfSignedLeaf, createTestCa, issueLeaf, type TestCa, type TestCertificate } from '../support/pki.ts';

/* Chain policy with a frozen clock: every certificate's validity is set relative to NOW. */
const NOW = new Date('2030-06-01T12:00:00Z');
const DAY = 86_400_000;
const at = (days: number) => new Date(NOW.getTime() + days * DAY);
const valid = { notBefore: at(-30), notAfter: at(335) };

let dir: string;
let root: TestCa;
let intermediate: TestCa;
let anchors: TrustAnchors;

function anchorFile(name: string, ...pems: string[]): string {
  const file = join(dir, name);
  writeFileSync(file, pems.join('\n'));
  return file;
}

const leaf = (ca: TestCa, options: Partial<Parameters<typeof issueLeaf>[1]> = {}) =>
  issueLeaf(ca, { subject: [{ C: ['GB'] }, { OU: ['org-1'] }, { CN: ['sw-1'] }], ...valid, ...options });

const verify = (cert: TestCertificate, chain: TestCertificate[] = [], trust = anchors, now = NOW) =>
  verifyCertificateChain(cert.certificate, chain.map((c) => c.certificate), trust, now);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-anchors-'));
  root = await createTestCa([{ C: ['GB'] }, { CN: ['Test Root CA'] }], { notBefore: at(-365), notAfter: at(3650) });
  intermediate = await createIntermediateCa(root, [{ C: ['GB'] }, { CN: ['Test Issuing CA'] }], { notBefore: at(-365), notAfter: at(1825) });
  anchors = loadTrustAnchors([anchorFile('root.pem', root.certPem)]);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('trust anchors', () => {
  it('reads every certificate of every file, and the PEM for the TLS ca option', async () => {
    const other = await createTestCa([{ CN: ['Other Root'] }]);
    const third = await createTestCa([{ CN: ['Third Root'] }]);
    const loaded = loadTrustAnchors([anchorFile('two.pem', root.certPem, other.certPem), anchorFile('one.pem', third.certPem)]);
    expect(loaded.certificates.map((c) => c.subject)).toEqual(['C=GB\nCN=Test Root CA', 'CN=Other Root', 'CN=Third Root']);
    expect(loaded.pem).toBe([root, other, third].map((c) => c.certificate.toString()).join(''));
  });

  it('refuses a file holding a certificate that is not a CA, naming the file and the certificate', async () => {
    const file = anchorFile('leaf.pem', root.certPem, (await leaf(root)).certPem);
    expect(() => loadTrustAnchors([file])).toThrow(`trust anchor ${file}: CN=sw-1, OU=org-1, C=GB is not a CA certificate`);
  });

  it('refuses a missing file, a file without a certificate, and a corrupt certificate, naming the file', () => {
    const missing = join(dir, 'missing.pem');
    expect(() => loadTrustAnchors([missing])).toThrow(`trust anchor ${missing}: ENOENT`);
    const empty = anchorFile('empty.pem', 'nothing here');
    expect(() => loadTrustAnchors([empty])).toThrow(`trust anchor ${empty}: no PEM certificate in the file`);
    const corrupt = anchorFile('corrupt.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----');
    expect(() => loadTrustAnchors([corrupt])).toThrow(`trust anchor ${corrupt}: `);
  });
});

describe('certificate chain verification', () => {
  it('trusts a clientAuth certificate issued by a trust anchor, naming the anchor', async () => {
    const result = verify(await leaf(root));
    expect(result.trusted).toBe(true);
    expect(result.trusted && result.anchor.raw.equals(root.certificate.raw)).toBe(true);
  });

  it('trusts a certificate through an intermediate sent with it, in any order among other certificates', async () => {
    const cert = await leaf(intermediate);
    const unrelated = await createTestCa([{ CN: ['Unrelated'] }]);
    expect(verify(cert, [intermediate]).trusted).toBe(true);
    expect(verify(cert, [unrelated, cert, intermediate]).trusted).toBe(true);
  });

  it('refuses a certificate whose intermediate was not sent', async () => {
    expect(verify(await leaf(intermediate))).toEqual({
      trusted: false, reason: 'untrusted-chain', description: 'no path from the certificate (issuer CN=Test Issuing CA, C=GB) to a trust anchor this server accepts',
    });
  });

  it('refuses a certificate from a CA that is not a trust anchor', async () => {
    const stranger = await createTestCa([{ CN: ['Some other CA'] }]);
    expect(verify(await leaf(stranger))).toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
  });

  it('refuses a certificate signed by an impostor CA with the trust anchor\'s name', async () => {
    const impostor = await createTestCa([{ C: ['GB'] }, { CN: ['Test Root CA'] }]);
    expect(verify(await leaf(impostor))).toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
  });

  it('refuses a self-signed certificate', async () => {
    const self = await createSelfSignedLeaf([{ CN: ['self-signed tpp'] }], valid);
    expect(verify(self)).toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
  });

  it('refuses a certificate issued by a certificate that is not a CA', async () => {
    const notCa = await leaf(root);
    expect(verify(await leaf(notCa), [notCa])).toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
  });

  it('refuses a chain through a CA whose key usage lacks keyCertSign (RFC 5280 §4.2.1.3)', async () => {
    const noSign = await createIntermediateCa(root, [{ CN: ['No keyCertSign CA'] }], { withoutKeyCertSign: true, ...valid });
    expect(verify(await leaf(noSign), [noSign])).toEqual({
      trusted: false, reason: 'untrusted-chain', description: 'no path from the certificate (issuer CN=No keyCertSign CA) to a trust anchor this server accepts',
    });
  });

  it('refuses a chain longer than a CA\'s path length constraint (RFC 5280 §4.2.1.9)', async () => {
    const strictRoot = await createTestCa([{ CN: ['Path length 0 root'] }], { pathLength: 0, ...valid });
    const sub = await createIntermediateCa(strictRoot, [{ CN: ['Sub CA'] }], valid);
    const strictAnchors = loadTrustAnchors([anchorFile('strict.pem', strictRoot.certPem)]);
    expect(verify(await leaf(strictRoot), [], strictAnchors).trusted).toBe(true);
    expect(verify(await leaf(sub), [sub], strictAnchors)).toEqual({
      trusted: false, reason: 'untrusted-chain', description: 'the issuing CA CN=Path length 0 root allows 0 intermediate CA(s) below it, the chain has 1',
    });
  });

  it(`trusts up to ${MAX_CHAIN_DEPTH} certificates below the anchor and refuses a longer chain`, async () => {
    const cas: TestCa[] = [];
    let parent = root;
    for (let i = 1; i <= MAX_CHAIN_DEPTH; i += 1) {
      parent = await createIntermediateCa(parent, [{ CN: [`Level ${i} CA`] }], valid);
      cas.push(parent);
    }
    const deepest = cas[MAX_CHAIN_DEPTH - 1]!;
    const fourBelow = cas[MAX_CHAIN_DEPTH - 2]!;
    expect(verify(await leaf(fourBelow), cas.slice(0, -1)).trusted).toBe(true);
    expect(verify(await leaf(deepest), cas)).toEqual({
      trusted: false, reason: 'untrusted-chain', description: `no path from the certificate to a trust anchor within ${MAX_CHAIN_DEPTH} certificates`,
    });
  });

  it('refuses an expired certificate and says when it expired', async () => {
    const cert = await leaf(root, { notBefore: at(-60), notAfter: at(-1) });
    expect(verify(cert)).toEqual({ trusted: false, reason: 'expired', description: `the certificate expired on ${at(-1).toISOString()}` });
  });

  it('refuses a certificate that is not yet valid', async () => {
    const cert = await leaf(root, { notBefore: at(1), notAfter: at(60) });
    expect(verify(cert)).toEqual({ trusted: false, reason: 'not-yet-valid', description: `the certificate is not valid before ${at(1).toISOString()}` });
  });

  it('refuses a certificate whose intermediate or trust anchor has expired', async () => {
    const oldIntermediate = await createIntermediateCa(root, [{ CN: ['Expired Issuing CA'] }], { notBefore: at(-400), notAfter: at(-2) });
    expect(verify(await leaf(oldIntermediate), [oldIntermediate])).toEqual({
      trusted: false, reason: 'expired', description: `the issuing CA CN=Expired Issuing CA expired on ${at(-2).toISOString()}`,
    });
    const oldRoot = await createTestCa([{ CN: ['Expired Root'] }], { notBefore: at(-400), notAfter: at(-3) });
    const oldAnchors = loadTrustAnchors([anchorFile('old.pem', oldRoot.certPem)]);
    expect(verify(await leaf(oldRoot), [], oldAnchors)).toEqual({
      trusted: false, reason: 'expired', description: `the trust anchor CN=Expired Root expired on ${at(-3).toISOString()}`,
    });
  });

  it('checks validity at the time it is given', async () => {
    const cert = await leaf(root, { notBefore: at(-60), notAfter: at(-1) });
    expect(verify(cert, [], anchors, at(-2)).trusted).toBe(true);
  });

  it('refuses a certificate whose extended key usage excludes clientAuth (RFC 5280 §4.2.1.12)', async () => {
    expect(verify(await leaf(root, { eku: ['serverAuth'] }))).toEqual({
      trusted: false, reason: 'not-for-client-auth', description: 'the certificate\'s extended key usage does not include clientAuth (1.3.6.1.5.5.7.3.2)',
    });
  });

  it('accepts a certificate without extended key usage, or with anyExtendedKeyUsage or clientAuth among others', async () => {
    expect(verify(await leaf(root, { eku: [] })).trusted).toBe(true);
    expect(verify(await leaf(root, { eku: ['2.5.29.37.0'] })).trusted).toBe(true);
    expect(verify(await leaf(root, { eku: ['serverAuth', 'clientAuth'] })).trusted).toBe(true);
  });
});

describe('certificate thumbprint (RFC 8705 §3.1 x5t#S256)', () => {
  it('is the base64url SHA-256 of the DER', () => {
    const fromOpenSsl = Buffer.from(root.certificate.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url');
    expect(certificateThumbprint(root.certificate)).toBe(fromOpenSsl);
    expect(certificateThumbprint(root.certificate)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

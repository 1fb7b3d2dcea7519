import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  CertificatePolicies,
  GeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  InhibitAnyPolicy,
  Name,
  NameConstraints,
  PolicyConstraints,
  PolicyInformation,
  RelativeDistinguishedName,
  AttributeTypeAndValue,
  AttributeValue,
} from '@peculiar/asn1-x509';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certificateThumbprint, loadTrustAnchors, MAX_CHAIN_DEPTH, verifyCertificateChain, type TrustAnchors } from '../../src/pki/certificate-chain.ts';
import * as x509 from '../../src/pki/x509.ts';
import { createIntermediateCa, createSelfSignedLeaf, createTestCa, issueLeaf, type JsonName, type TestCa, type TestCertificate } from '../support/pki.ts';

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
  verifyCertificateChain(
    cert.certificate,
    chain.map((c) => c.certificate),
    trust,
    now,
  );

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
      trusted: false,
      reason: 'untrusted-chain',
      description: 'no path from the certificate (issuer CN=Test Issuing CA, C=GB) to a trust anchor this server accepts',
    });
  });

  it('refuses a certificate from a CA that is not a trust anchor', async () => {
    const stranger = await createTestCa([{ CN: ['Some other CA'] }]);
    expect(verify(await leaf(stranger))).toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
  });

  it("refuses a certificate signed by an impostor CA with the trust anchor's name", async () => {
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
      trusted: false,
      reason: 'untrusted-chain',
      description: 'no path from the certificate (issuer CN=No keyCertSign CA) to a trust anchor this server accepts',
    });
  });

  it("refuses a chain longer than a CA's path length constraint (RFC 5280 §4.2.1.9)", async () => {
    const strictRoot = await createTestCa([{ CN: ['Path length 0 root'] }], { pathLength: 0, ...valid });
    const sub = await createIntermediateCa(strictRoot, [{ CN: ['Sub CA'] }], valid);
    const strictAnchors = loadTrustAnchors([anchorFile('strict.pem', strictRoot.certPem)]);
    expect(verify(await leaf(strictRoot), [], strictAnchors).trusted).toBe(true);
    expect(verify(await leaf(sub), [sub], strictAnchors)).toEqual({
      trusted: false,
      reason: 'untrusted-chain',
      description: 'the issuing CA CN=Path length 0 root allows 0 intermediate CA(s) below it, the chain has 1',
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
      trusted: false,
      reason: 'untrusted-chain',
      description: `no path from the certificate to a trust anchor within ${MAX_CHAIN_DEPTH} certificates`,
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
      trusted: false,
      reason: 'expired',
      description: `the issuing CA CN=Expired Issuing CA expired on ${at(-2).toISOString()}`,
    });
    const oldRoot = await createTestCa([{ CN: ['Expired Root'] }], { notBefore: at(-400), notAfter: at(-3) });
    const oldAnchors = loadTrustAnchors([anchorFile('old.pem', oldRoot.certPem)]);
    expect(verify(await leaf(oldRoot), [], oldAnchors)).toEqual({
      trusted: false,
      reason: 'expired',
      description: `the trust anchor CN=Expired Root expired on ${at(-3).toISOString()}`,
    });
  });

  it('checks validity at the time it is given', async () => {
    const cert = await leaf(root, { notBefore: at(-60), notAfter: at(-1) });
    expect(verify(cert, [], anchors, at(-2)).trusted).toBe(true);
  });

  it('refuses a certificate whose extended key usage excludes clientAuth (RFC 5280 §4.2.1.12)', async () => {
    expect(verify(await leaf(root, { eku: ['serverAuth'] }))).toEqual({
      trusted: false,
      reason: 'not-for-client-auth',
      description: "the certificate's extended key usage does not include clientAuth (1.3.6.1.5.5.7.3.2)",
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

/** An extension built from an @peculiar/asn1-x509 value. */
const ext = (oid: string, critical: boolean, value: object) => new x509.Extension(oid, critical, AsnConvert.serialize(value));
const subtrees = (names: GeneralName[]) => new GeneralSubtrees(names.map((base) => new GeneralSubtree({ base })));
const nameConstraints = (permitted: GeneralName[], excluded: GeneralName[] = []) =>
  ext(
    '2.5.29.30',
    true,
    new NameConstraints({
      ...(permitted.length === 0 ? {} : { permittedSubtrees: subtrees(permitted) }),
      ...(excluded.length === 0 ? {} : { excludedSubtrees: subtrees(excluded) }),
    }),
  );
/** An ASN.1 Name, most general RDN first, of printable strings. */
const asnName = (...rdns: [string, string][]) =>
  new Name(
    rdns.map(([type, value]) => new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value: new AttributeValue({ printableString: value }) })])),
  );
const C = '2.5.4.6';
const O = '2.5.4.10';
/** SkipCerts as the decoder wants it: big-endian bytes. */
const skip = (n: number) => new Uint8Array([n]).buffer;
const policies = (...oids: string[]) =>
  ext('2.5.29.32', false, new CertificatePolicies(oids.map((policyIdentifier) => new PolicyInformation({ policyIdentifier }))));

describe('name constraints (RFC 5280 §4.2.1.10)', () => {
  const constrainedCa = (options: Parameters<typeof createIntermediateCa>[2]) =>
    createIntermediateCa(root, [{ C: ['GB'] }, { O: ['Acme Bank'] }, { CN: ['Constrained CA'] }], { ...valid, ...options });

  it('trusts a subject inside a permitted directoryName subtree and refuses one outside it', async () => {
    const ca = await constrainedCa({ extensions: [nameConstraints([new GeneralName({ directoryName: asnName([C, 'GB'], [O, 'Acme Bank']) })])] });
    expect(verify(await leaf(ca, { subject: [{ C: ['GB'] }, { O: ['Acme Bank'] }, { CN: ['tpp-1'] }] }), [ca]).trusted).toBe(true);
    expect(verify(await leaf(ca, { subject: [{ C: ['GB'] }, { O: ['Other Org'] }, { CN: ['tpp-1'] }] }), [ca])).toEqual({
      trusted: false,
      reason: 'untrusted-chain',
      description: 'the certificate: the subject is outside the names permitted by the issuing CA CN=Constrained CA, O=Acme Bank, C=GB',
    });
  });

  it('refuses a subject inside an excluded directoryName subtree', async () => {
    const ca = await constrainedCa({ extensions: [nameConstraints([], [new GeneralName({ directoryName: asnName([C, 'GB'], [O, 'Banned Ltd']) })])] });
    expect(verify(await leaf(ca, { subject: [{ C: ['GB'] }, { O: ['Banned Ltd'] }, { CN: ['x'] }] }), [ca])).toEqual(
      expect.objectContaining({
        trusted: false,
        description: 'the certificate: the subject is excluded by the name constraints of the issuing CA CN=Constrained CA, O=Acme Bank, C=GB',
      }),
    );
    expect(verify(await leaf(ca, { subject: [{ C: ['GB'] }, { O: ['Fine Ltd'] }, { CN: ['x'] }] }), [ca]).trusted).toBe(true);
  });

  it('checks dNSName, rfc822Name, URI and iPAddress alternative names against subtrees of their form', async () => {
    const ca = await constrainedCa({
      extensions: [
        nameConstraints(
          [
            new GeneralName({ dNSName: 'tpp.example' }),
            new GeneralName({ rfc822Name: '.tpp.example' }),
            new GeneralName({ uniformResourceIdentifier: '.tpp.example' }),
            new GeneralName({ iPAddress: '10.1.0.0/16' }),
          ],
          [new GeneralName({ dNSName: 'bad.tpp.example' })],
        ),
      ],
    });
    const subject: JsonName = [{ C: ['GB'] }, { CN: ['tpp'] }];
    expect(
      verify(
        await leaf(ca, { subject, san: { dns: ['api.tpp.example'], email: ['ops@mail.tpp.example'], url: ['https://www.tpp.example/x'], ip: ['10.1.2.3'] } }),
        [ca],
      ).trusted,
    ).toBe(true);
    const refused = async (san: NonNullable<Parameters<typeof issueLeaf>[1]['san']>) => verify(await leaf(ca, { subject, san }), [ca]);
    expect(await refused({ dns: ['tpp.example.evil'] })).toEqual(
      expect.objectContaining({ description: expect.stringContaining('dNSName tpp.example.evil is outside the names permitted by') }),
    );
    expect(await refused({ dns: ['x.bad.tpp.example'] })).toEqual(
      expect.objectContaining({ description: expect.stringContaining('dNSName x.bad.tpp.example is excluded by') }),
    );
    expect(await refused({ email: ['ops@elsewhere.example'] })).toEqual(
      expect.objectContaining({ description: expect.stringContaining('rfc822Name ops@elsewhere.example is outside') }),
    );
    expect(await refused({ url: ['https://tpp.example.evil/'] })).toEqual(
      expect.objectContaining({ description: expect.stringContaining('uniformResourceIdentifier https://tpp.example.evil/ is outside') }),
    );
    expect(await refused({ ip: ['10.2.0.1'] })).toEqual(expect.objectContaining({ description: expect.stringContaining('iPAddress 10.2.0.1 is outside') }));
  });

  it("applies the constraints of every CA above a certificate, the trust anchor's included", async () => {
    const constrainedRoot = await createTestCa([{ C: ['GB'] }, { CN: ['Constrained Root'] }], {
      ...valid,
      extensions: [nameConstraints([new GeneralName({ directoryName: asnName([C, 'GB']) })])],
    });
    const sub = await createIntermediateCa(constrainedRoot, [{ C: ['GB'] }, { CN: ['Sub'] }], valid);
    const trust = loadTrustAnchors([anchorFile('constrained-root.pem', constrainedRoot.certPem)]);
    expect(verify(await leaf(sub, { subject: [{ C: ['GB'] }, { CN: ['ok'] }] }), [sub], trust).trusted).toBe(true);
    expect(verify(await leaf(sub, { subject: [{ C: ['FR'] }, { CN: ['nope'] }] }), [sub], trust)).toEqual(
      expect.objectContaining({
        trusted: false,
        description: 'the certificate: the subject is outside the names permitted by the trust anchor CN=Constrained Root, C=GB',
      }),
    );
    // The intermediate itself is bound too: a sub-CA outside the subtree cannot issue anything.
    const outside = await createIntermediateCa(constrainedRoot, [{ C: ['DE'] }, { CN: ['Outside Sub'] }], valid);
    expect(verify(await leaf(outside, { subject: [{ C: ['GB'] }, { CN: ['ok'] }] }), [outside], trust)).toEqual(
      expect.objectContaining({
        trusted: false,
        description: 'the issuing CA CN=Outside Sub, C=DE: the subject is outside the names permitted by the trust anchor CN=Constrained Root, C=GB',
      }),
    );
  });

  it('refuses a name of a form it cannot evaluate when that form is constrained', async () => {
    const registeredIdConstraint = new GeneralName({ registeredID: '1.2.3.4' });
    const ca = await constrainedCa({ extensions: [nameConstraints([registeredIdConstraint])] });
    const withRegisteredId = await leaf(ca, {
      subject: [{ C: ['GB'] }, { CN: ['rid'] }],
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'id', value: '1.2.3.5' }])],
    });
    expect(verify(withRegisteredId, [ca])).toEqual(
      expect.objectContaining({ trusted: false, description: expect.stringContaining('registeredID name cannot be checked') }),
    );
    expect(verify(await leaf(ca, { subject: [{ C: ['GB'] }, { CN: ['plain'] }] }), [ca]).trusted).toBe(true);
  });
});

describe('critical extensions and policy constraints (RFC 5280 §4.2, §4.2.1.11)', () => {
  it('refuses a certificate or CA carrying a critical extension it does not process, naming the OID', async () => {
    const unknown = new x509.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([0x05, 0x00]));
    expect(verify(await leaf(root, { extensions: [unknown] }))).toEqual({
      trusted: false,
      reason: 'untrusted-chain',
      description: 'the certificate has a critical extension this server does not process (1.3.6.1.4.1.99999.1)',
    });
    const ca = await createIntermediateCa(root, [{ CN: ['Odd CA'] }], { ...valid, extensions: [unknown] });
    expect(verify(await leaf(ca), [ca])).toEqual(
      expect.objectContaining({ description: 'the issuing CA CN=Odd CA has a critical extension this server does not process (1.3.6.1.4.1.99999.1)' }),
    );
  });

  it('accepts the same extension when it is not critical', async () => {
    const unknown = new x509.Extension('1.3.6.1.4.1.99999.1', false, new Uint8Array([0x05, 0x00]));
    expect(verify(await leaf(root, { extensions: [unknown] })).trusted).toBe(true);
  });

  it('requires a policy on every certificate once a CA requires an explicit policy', async () => {
    const requireNow = ext('2.5.29.36', true, new PolicyConstraints({ requireExplicitPolicy: skip(0) }));
    const ca = await createIntermediateCa(root, [{ CN: ['Policy CA'] }], { ...valid, extensions: [requireNow, policies('1.2.3.4')] });
    expect(verify(await leaf(ca, { extensions: [policies('1.2.3.4.5')] }), [ca]).trusted).toBe(true);
    expect(verify(await leaf(ca), [ca])).toEqual({
      trusted: false,
      reason: 'untrusted-chain',
      description: 'the certificate asserts no certificate policy, and a CA on the path requires an explicit policy (RFC 5280 §4.2.1.11)',
    });
    // A CA that itself asserts no policy breaks the path for everything below it.
    const bare = await createIntermediateCa(root, [{ CN: ['Bare Policy CA'] }], { ...valid, extensions: [requireNow] });
    expect(verify(await leaf(bare, { extensions: [policies('1.2.3.4.5')] }), [bare])).toEqual(
      expect.objectContaining({ trusted: false, description: expect.stringContaining('the issuing CA CN=Bare Policy CA asserts no certificate policy') }),
    );
  });

  it('counts anyPolicy only while no CA above inhibits it', async () => {
    const anyPolicy = '2.5.29.32.0';
    const strict = await createIntermediateCa(root, [{ CN: ['Inhibiting CA'] }], {
      ...valid,
      extensions: [
        ext('2.5.29.36', true, new PolicyConstraints({ requireExplicitPolicy: skip(0) })),
        ext('2.5.29.54', true, new InhibitAnyPolicy(skip(0))),
        policies('1.2.3.4'),
      ],
    });
    expect(verify(await leaf(strict, { extensions: [policies(anyPolicy)] }), [strict])).toEqual(expect.objectContaining({ trusted: false }));
    const lenient = await createIntermediateCa(root, [{ CN: ['Lenient CA'] }], {
      ...valid,
      extensions: [ext('2.5.29.36', true, new PolicyConstraints({ requireExplicitPolicy: skip(0) })), policies('1.2.3.4')],
    });
    expect(verify(await leaf(lenient, { extensions: [policies(anyPolicy)] }), [lenient]).trusted).toBe(true);
  });

  it('lets a CA defer the requirement by requireExplicitPolicy certificates', async () => {
    const later = await createIntermediateCa(root, [{ CN: ['Deferring CA'] }], {
      ...valid,
      extensions: [ext('2.5.29.36', true, new PolicyConstraints({ requireExplicitPolicy: skip(2) }))],
    });
    expect(verify(await leaf(later), [later]).trusted).toBe(true);
  });
});

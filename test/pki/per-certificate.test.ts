import { X509Certificate } from 'node:crypto';
import { certificateProfile } from '../../src/certificates/certificate-profile.ts';
import { BasicConstraints, ExtendedKeyUsage } from '@peculiar/asn1-x509';
import { asnCertificateOf, decodedExtension, isSelfIssued } from '../../src/pki/certificate-extensions.ts';
import { perCertificate } from '../../src/pki/per-certificate.ts';
import { createTestCa, issueLeaf, type TestCa, type TestCertificate } from '../support/pki.ts';

/* A pure derivation of a certificate is computed once per distinct certificate (by DER), within a bound. */
const NOW = new Date('2030-06-01T12:00:00Z');
const valid = { notBefore: new Date(NOW.getTime() - 86_400_000), notAfter: new Date(NOW.getTime() + 365 * 86_400_000) };

let ca: TestCa;
let leaves: TestCertificate[];

/** The same certificate as a new X509Certificate object, as a forwarded header or a registry row makes it. */
const again = (cert: TestCertificate) => new X509Certificate(cert.certPem);

beforeAll(async () => {
  ca = await createTestCa([{ C: ['GB'] }, { CN: ['Test Root CA'] }], valid);
  leaves = await Promise.all(['sw-1', 'sw-2', 'sw-3'].map((cn) => issueLeaf(ca, { subject: [{ C: ['GB'] }, { CN: [cn] }], ...valid })));
});

describe('perCertificate', () => {
  it('derives once for the same DER, whichever X509Certificate object carries it', () => {
    let calls = 0;
    const subjectOnce = perCertificate((cert) => ({ subject: cert.subject, call: ++calls }));
    const first = subjectOnce(leaves[0]!.certificate);
    expect(subjectOnce(again(leaves[0]!))).toBe(first);
    expect(subjectOnce(leaves[0]!.certificate)).toBe(first);
    expect(calls).toBe(1);
  });

  it('derives again for a different certificate', () => {
    const subjectOnce = perCertificate((cert) => ({ subject: cert.subject }));
    const one = subjectOnce(leaves[0]!.certificate);
    const two = subjectOnce(leaves[1]!.certificate);
    expect(two).not.toBe(one);
    expect(one.subject).toContain('CN=sw-1');
    expect(two.subject).toContain('CN=sw-2');
  });

  it('remembers at most its capacity, forgetting the least recently used first', () => {
    const derived: string[] = [];
    const subjectOnce = perCertificate((cert) => {
      derived.push(cert.subject);
      return cert.subject;
    }, 2);
    const [a, b, c] = leaves.map((l) => l.certificate) as [X509Certificate, X509Certificate, X509Certificate];
    subjectOnce(a);
    subjectOnce(b);
    subjectOnce(a); // a is now the most recently used
    subjectOnce(c); // over capacity: b goes
    expect(derived).toHaveLength(3);
    subjectOnce(a);
    subjectOnce(c);
    expect(derived).toHaveLength(3);
    subjectOnce(b);
    expect(derived).toHaveLength(4);
    expect(derived[3]).toBe(b.subject);
  });
});

describe('derivations kept per certificate', () => {
  it('decodes the ASN.1 of a certificate once, for every object carrying the same DER', () => {
    const decoded = asnCertificateOf(leaves[0]!.certificate);
    expect(asnCertificateOf(again(leaves[0]!))).toBe(decoded);
    expect(asnCertificateOf(leaves[1]!.certificate)).not.toBe(decoded);
  });

  it('decodes an extension once per certificate, and answers whether it is self-issued from its own names', () => {
    const constraints = decodedExtension(ca.certificate, '2.5.29.19', BasicConstraints);
    expect(constraints?.cA).toBe(true);
    expect(decodedExtension(again(ca), '2.5.29.19', BasicConstraints)).toBe(constraints);
    expect(decodedExtension(leaves[0]!.certificate, '2.5.29.19', BasicConstraints)).not.toBe(constraints);
    expect([...(decodedExtension(leaves[0]!.certificate, '2.5.29.37', ExtendedKeyUsage) ?? [])]).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(isSelfIssued(ca.certificate)).toBe(true);
    expect(isSelfIssued(again(ca))).toBe(true);
    expect(isSelfIssued(leaves[0]!.certificate)).toBe(false);
  });

  it('reads the profile once per certificate, frozen, and a different profile for a different certificate', () => {
    const profile = certificateProfile(leaves[0]!.certificate);
    expect(certificateProfile(again(leaves[0]!))).toBe(profile);
    expect(Object.isFrozen(profile)).toBe(true);
    expect(Object.isFrozen(profile.sans)).toBe(true);
    const other = certificateProfile(leaves[1]!.certificate);
    expect(other).not.toBe(profile);
    expect(other.thumbprint).not.toBe(profile.thumbprint);
    expect(other.subjectDn).toBe('CN=sw-2, C=GB');
  });
});

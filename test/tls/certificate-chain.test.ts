import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueLeaf } from '../../src/sandbox/pki.ts';
import { certificateThumbprint, loadTrustAnchors, verifyCertificateChain } from '../../src/tls/certificate-chain.ts';

const NOW = new Date();

function anchorsFrom(...pems: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'moat-anchors-'));
  const file = join(dir, 'ca.pem');
  writeFileSync(file, pems.join(''));
  return loadTrustAnchors([file]);
}

describe('client certificate chain verification', () => {
  let ca: Awaited<ReturnType<typeof createCa>>;
  let otherCa: Awaited<ReturnType<typeof createCa>>;

  beforeAll(async () => {
    ca = await createCa([{ CN: ['Trusted TPP CA'] }], NOW);
    otherCa = await createCa([{ CN: ['Some other CA'] }], NOW);
  });

  it('trusts a clientAuth certificate issued by a trust anchor', async () => {
    const leaf = await issueLeaf(ca, { subject: [{ CN: ['tpp'] }], usage: 'clientAuth', now: NOW });
    const result = verifyCertificateChain(new X509Certificate(leaf.certPem), [], anchorsFrom(ca.certPem), NOW);
    expect(result).toEqual(expect.objectContaining({ trusted: true }));
  });

  it('refuses a certificate from a CA that is not a trust anchor', async () => {
    const leaf = await issueLeaf(otherCa, { subject: [{ CN: ['tpp'] }], usage: 'clientAuth', now: NOW });
    expect(verifyCertificateChain(new X509Certificate(leaf.certPem), [], anchorsFrom(ca.certPem), NOW))
      .toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
  });

  it('refuses a self-signed certificate', () => {
    expect(verifyCertificateChain(otherCa.certificate, [], anchorsFrom(ca.certPem), NOW))
      .toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
  });

  it('refuses an expired certificate and says when it expired', async () => {
    const longAgo = new Date(NOW.getTime() - 400 * 86_400_000);
    const leaf = await issueLeaf(ca, { subject: [{ CN: ['tpp'] }], usage: 'clientAuth', now: longAgo, days: 30 });
    const result = verifyCertificateChain(new X509Certificate(leaf.certPem), [], anchorsFrom(ca.certPem), NOW);
    expect(result).toEqual(expect.objectContaining({ trusted: false, reason: 'expired' }));
    expect(result.trusted === false && result.description).toMatch(/^the certificate expired on \d{4}-/);
  });

  it('refuses a certificate that is not yet valid', async () => {
    const later = new Date(NOW.getTime() + 10 * 86_400_000);
    const leaf = await issueLeaf(ca, { subject: [{ CN: ['tpp'] }], usage: 'clientAuth', now: later });
    expect(verifyCertificateChain(new X509Certificate(leaf.certPem), [], anchorsFrom(ca.certPem), NOW))
      .toEqual(expect.objectContaining({ trusted: false, reason: 'not-yet-valid' }));
  });

  it('refuses a server certificate (no clientAuth extended key usage)', async () => {
    const leaf = await issueLeaf(ca, { subject: [{ CN: ['localhost'] }], usage: 'serverAuth', now: NOW });
    expect(verifyCertificateChain(new X509Certificate(leaf.certPem), [], anchorsFrom(ca.certPem), NOW))
      .toEqual(expect.objectContaining({ trusted: false, reason: 'not-for-client-auth' }));
  });

  it('refuses a trust anchor file holding a leaf certificate, naming the file', async () => {
    const leaf = await issueLeaf(ca, { subject: [{ CN: ['tpp'] }], usage: 'clientAuth', now: NOW });
    expect(() => anchorsFrom(leaf.certPem)).toThrow(/is not a CA certificate/);
  });

  it('computes x5t#S256 as the base64url SHA-256 of the DER (RFC 8705 §3.1)', () => {
    const thumbprint = certificateThumbprint(ca.certificate);
    expect(thumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(thumbprint, 'base64url')).toHaveLength(32);
  });
});

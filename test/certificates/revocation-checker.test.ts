import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certificateProfile } from '../../src/certificates/certificate-profile.ts';
import { createRevocationChecker } from '../../src/certificates/revocation-checker.ts';
import { issueLeaf } from '../../src/sandbox/certificate-issuing.ts';
import { ensureSandboxMaterial, type SandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { startRevocationAuthority, type RevocationAuthority } from '../support/revocation-authority.ts';

/*
 * Revocation checking against a real CA's services on loopback: OCSP first, the CRL when OCSP
 * cannot answer, every answer authenticated, "unknown" when nothing trustworthy can be learned.
 */

let dir: string;
let material: SandboxMaterial;
let authority: RevocationAuthority;
let issuer: X509Certificate;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-revocation-'));
  material = await ensureSandboxMaterial(dir);
  authority = await startRevocationAuthority({ certPem: material.tppCaPem, keyPem: material.tppCaKeyPem });
  issuer = new X509Certificate(material.tppCaPem);
});
afterAll(async () => {
  await authority.close();
  rmSync(dir, { recursive: true, force: true });
});

async function leaf(pointers: { ocsp?: boolean; crl?: boolean } = { ocsp: true, crl: true }) {
  const issued = await issueLeaf(
    { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem },
    {
      subject: [{ CN: ['tpp'] }],
      usage: 'clientAuth',
      now: new Date(),
      ...(pointers.ocsp === true ? { ocspUrl: authority.ocspUrl } : {}),
      ...(pointers.crl === true ? { crlUrl: authority.crlUrl } : {}),
    },
  );
  return { cert: issued.certificate, profile: certificateProfile(issued.certificate) };
}

beforeEach(() => {
  authority.set('ocsp', 'up');
  authority.set('crl', 'up');
});

it('reads the revocation pointers from the certificate (AIA OCSP, CRL distribution points)', async () => {
  const { profile } = await leaf();
  expect(profile.ocspUrls).toEqual([authority.ocspUrl]);
  expect(profile.crlUrls).toEqual([authority.crlUrl]);
});

it('answers good from the OCSP responder, and revoked once the CA revokes the certificate', async () => {
  const { cert, profile } = await leaf();
  expect(await createRevocationChecker().check(cert, issuer, profile)).toEqual(expect.objectContaining({ status: 'good', source: 'ocsp' }));
  authority.revoke(cert.serialNumber);
  // A fresh checker: the first answer is cached until its nextUpdate.
  expect(await createRevocationChecker().check(cert, issuer, profile)).toEqual(expect.objectContaining({ status: 'revoked', source: 'ocsp' }));
});

it('caches an answer instead of asking the responder for every check', async () => {
  const { cert, profile } = await leaf();
  const checker = createRevocationChecker();
  const before = authority.requests.ocsp;
  await checker.check(cert, issuer, profile);
  await checker.check(cert, issuer, profile);
  expect(authority.requests.ocsp - before).toBe(1);
});

it('falls back to the CRL when the OCSP responder is down, and finds a revoked certificate on it', async () => {
  const { cert, profile } = await leaf();
  authority.set('ocsp', 'down');
  expect(await createRevocationChecker().check(cert, issuer, profile)).toEqual(expect.objectContaining({ status: 'good', source: 'crl' }));
  authority.revoke(cert.serialNumber);
  const verdict = await createRevocationChecker().check(cert, issuer, profile);
  expect(verdict).toEqual(expect.objectContaining({ status: 'revoked', source: 'crl', reason: 'keyCompromise' }));
  expect(verdict.revokedAt).toBeInstanceOf(Date);
});

it('does not believe an OCSP response or a CRL signed by anyone but the CA', async () => {
  const { cert, profile } = await leaf();
  authority.set('ocsp', 'forged');
  authority.set('crl', 'forged');
  const verdict = await createRevocationChecker().check(cert, issuer, profile);
  expect(verdict.status).toBe('unknown');
  expect(verdict.detail).toMatch(/OCSP .*(signature|verif)/i);
  expect(verdict.detail).toMatch(/CRL .*not signed by the issuer/);
});

it('says unknown, with the reasons, when nothing answers or the certificate names no pointer', async () => {
  const { cert, profile } = await leaf();
  authority.set('ocsp', 'down');
  authority.set('crl', 'down');
  const verdict = await createRevocationChecker().check(cert, issuer, profile);
  expect(verdict).toEqual(expect.objectContaining({ status: 'unknown', source: 'none' }));
  expect(verdict.detail).toContain('HTTP 503');
  const bare = await leaf({});
  expect((await createRevocationChecker().check(bare.cert, issuer, bare.profile)).detail).toBe('the certificate names no OCSP responder and no CRL');
});

it('gives up on a responder that does not answer within the timeout', async () => {
  const { cert } = await leaf();
  const silent = await import('node:net').then(
    ({ createServer }) =>
      new Promise<import('node:net').Server>((resolve) => {
        const s = createServer(() => {});
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
  );
  try {
    const url = `http://127.0.0.1:${(silent.address() as import('node:net').AddressInfo).port}/ocsp`;
    const started = Date.now();
    const verdict = await createRevocationChecker({ timeoutMs: 300 }).check(cert, issuer, { ocspUrls: [url], crlUrls: [] });
    expect(verdict.status).toBe('unknown');
    expect(Date.now() - started).toBeLessThan(5000);
  } finally {
    silent.close();
  }
});

import * as oauth from 'oauth4webapi';
import { importSigningKey } from '../../src/sandbox/certificate-issuing.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import * as x509 from '../../src/pki/x509.ts';
import type { Harness } from '../support/moat-harness.ts';
import { createTestCa, issueLeaf, type TestCa } from '../support/pki.ts';
import { authorizationCodeFlow, onboardTpp, tlsFetch, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * One log line tells an operator why a TPP's call failed: each transport (mTLS) cause has its own
 * outcome, apart from the OAuth error codes — though the TPP itself only ever sees invalid_client.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

let sandboxCa: TestCa;
beforeAll(async () => {
  const material = await ensureSandboxMaterial(h.config.dataDir);
  const certificate = new (await import('node:crypto')).X509Certificate(material.tppCaPem);
  sandboxCa = {
    certPem: material.tppCaPem,
    keyPem: material.tppCaKeyPem,
    certificate,
    privateKey: importSigningKey(material.tppCaKeyPem) as unknown as TestCa['privateKey'],
    keyAlgorithm: 'ECDSA',
  };
});

const subject = () => new x509.X509Certificate(tpp.creds.certPem).subjectName.toJSON();

/** A client_credentials request as the registered client, over `cert` (or none); returns the outcome logged for it. */
async function outcomeWith(
  cert: { certPem: string; keyPem: string } | undefined,
  headers: Record<string, string> = {},
): Promise<{ status: number; error: string; outcome: unknown }> {
  const f = tlsFetch(tpp.creds.serverCaPem, cert);
  try {
    const before = h.logs.length;
    const res = await f(`${h.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'accounts', client_id: tpp.client.client_id }).toString(),
    });
    const body = (await res.json()) as { error: string };
    const line = h.logs.slice(before).find((l) => l.event === 'request' && l.path === '/token');
    return { status: res.status, error: body.error, outcome: line?.outcome };
  } finally {
    await f.close();
  }
}

it('logs no certificate, an untrusted chain, an expired certificate and a subject mismatch as such', async () => {
  expect(await outcomeWith(undefined)).toEqual({ status: 401, error: 'invalid_client', outcome: 'mtls_no_certificate' });
  const foreignCa = await createTestCa([{ CN: ['Some Other CA'] }]);
  expect(await outcomeWith(await issueLeaf(foreignCa, { subject: subject() }))).toEqual({
    status: 401,
    error: 'invalid_client',
    outcome: 'mtls_untrusted_chain',
  });
  const expired = await issueLeaf(sandboxCa, {
    subject: subject(),
    notBefore: new Date(Date.now() - 400 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  });
  expect(await outcomeWith(expired)).toEqual({ status: 401, error: 'invalid_client', outcome: 'mtls_expired' });
  const otherSubject = await issueLeaf(sandboxCa, { subject: [{ C: ['GB'] }, { O: ['Someone'] }, { CN: ['someone-else'] }] });
  expect(await outcomeWith(otherSubject)).toEqual({ status: 401, error: 'invalid_client', outcome: 'mtls_subject_mismatch' });
});

it('logs a forwarded certificate header from an address that is not a trusted gateway', async () => {
  const res = await outcomeWith(undefined, { 'client-cert': `:${Buffer.from(new x509.X509Certificate(tpp.creds.certPem).rawData).toString('base64')}:` });
  expect(res).toEqual({ status: 401, error: 'invalid_client', outcome: 'mtls_untrusted_forwarder' });
});

it('logs a bound token presented over another certificate as a thumbprint mismatch, and an OAuth error as its code', async () => {
  const { tokens } = await authorizationCodeFlow(h, tpp);
  const other = await onboardTpp(h);
  try {
    const before = h.logs.length;
    expect((await other.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(401);
    expect(h.logs.slice(before).find((l) => l.event === 'request' && l.path === '/sandbox-api/accounts')?.outcome).toBe('mtls_thumbprint_mismatch');
  } finally {
    await other.close();
  }
  const before = h.logs.length;
  const res = await oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), 'not-a-refresh-token', { [oauth.customFetch]: tpp.fetch });
  expect(res.status).toBe(400);
  expect(h.logs.slice(before).find((l) => l.event === 'request' && l.path === '/token')?.outcome).toBe('invalid_grant');
});

it('logs a revoked certificate as revoked', async () => {
  await h.moat.certificates.registry.revoke(tpp.creds.summary['x5t#S256'] as string, { source: 'operator', reason: 'test' });
  expect(await outcomeWith(tpp.creds)).toEqual({ status: 401, error: 'invalid_client', outcome: 'mtls_certificate_revoked' });
});

import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { issueLeaf } from '../../src/sandbox/certificate-issuing.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { tlsFetch } from '../support/tpp-client.ts';

/*
 * A second trusted directory in Open Finance Brasil's claim style next to the sandbox's UK one:
 * its roles (DADOS, PAGTO) mapped to Moat's, the organisation in the certificate's
 * organizationIdentifier as OFBBR-<org_id>, and its SSAs refused once older than 5 minutes.
 */

const ISSUER = 'Open Banking Brasil sandbox SSA issuer';
let h: Harness;
let directoryKey: Parameters<SignJWT['sign']>[0];
let directoryKid: string;
let caPem: { certPem: string; keyPem: string };
let serverCaPem: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-brazil-'));
  const { privateKey, publicKey } = await generateKeyPair('PS256', { extractable: true });
  const jwk = (await exportJWK(publicKey)) as JWK;
  directoryKid = await calculateJwkThumbprint(jwk);
  directoryKey = privateKey;
  writeFileSync(join(dir, 'brazil.jwks.json'), JSON.stringify({ keys: [{ ...jwk, kid: directoryKid, alg: 'PS256', use: 'sig' }] }));
  h = await startMoat({
    config: { directories: [{ name: 'Open Finance Brasil (test)', issuer: ISSUER, jwksFile: join(dir, 'brazil.jwks.json'), claimStyle: 'brazil' }] },
  });
  const material = await ensureSandboxMaterial(h.config.dataDir);
  caPem = { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem };
  serverCaPem = material.serverCaPem;
});
afterAll(async () => {
  await h.close();
});

async function brazilTpp(options: { roles?: string[]; iat?: number; certOrg?: string } = {}) {
  const orgId = randomUUID();
  const softwareId = randomUUID();
  const cert = await issueLeaf(caPem, {
    subject: [
      { C: ['BR'] },
      { O: ['Fintech Brasil Ltda'] },
      { '2.5.4.97': [options.certOrg ?? `OFBBR-${orgId}`] },
      { '0.9.2342.19200300.100.1.1': [softwareId] },
      { CN: ['tpp.example.com.br'] },
    ],
    usage: 'clientAuth',
    now: new Date(),
  });
  const { publicKey } = await generateKeyPair('PS256', { extractable: true });
  const tppJwk = { ...(await exportJWK(publicKey)), kid: 'tpp-sig', alg: 'PS256', use: 'sig' };
  const iat = options.iat ?? Math.floor(Date.now() / 1000);
  const ssa = await new SignJWT({
    software_id: softwareId,
    org_id: orgId,
    org_name: 'Fintech Brasil Ltda',
    org_status: 'Active',
    software_client_name: 'Fintech Brasil',
    software_roles: options.roles ?? ['DADOS'],
    software_redirect_uris: ['https://tpp.example.com.br/cb'],
    software_jwks: { keys: [tppJwk] },
  })
    .setProtectedHeader({ alg: 'PS256', kid: directoryKid, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setIssuedAt(iat)
    .setJti(randomUUID())
    .sign(directoryKey);
  return { cert, softwareId, ssa, subjectDn: cert.certificate.subject.split('\n').reverse().join(', ') };
}

async function register(tpp: Awaited<ReturnType<typeof brazilTpp>>, extra: Record<string, unknown> = {}) {
  const f = tlsFetch(serverCaPem, tpp.cert);
  try {
    const res = await f(`${h.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        software_statement: tpp.ssa,
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: tpp.subjectDn,
        redirect_uris: ['https://tpp.example.com.br/cb'],
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        ...extra,
      }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  } finally {
    await f.close();
  }
}

it('registers a TPP vouched for in the Brazilian style, mapping DADOS to AISP', async () => {
  const res = await register(await brazilTpp({ roles: ['DADOS'] }));
  expect(res.body.error_description).toBeUndefined();
  expect(res.status).toBe(201);
  expect(res.body.software_roles).toEqual(['AISP']);
  // The AISP's data scope, plus the Grant Management scopes every client may use to query and revoke its grants.
  expect(res.body.scope).toBe('openid offline_access grant_management_query grant_management_revoke accounts');
  expect(res.body.authorization_details_types).toEqual(['account_information']);
});

it('refuses a certificate whose organizationIdentifier is not OFBBR-<org_id>, saying what it expected', async () => {
  const tpp = await brazilTpp({ certOrg: 'someone-else' });
  const res = await register(tpp);
  expect(res.status).toBe(400);
  expect(res.body.error).toBe('unapproved_software_statement');
  expect(res.body.error_description).toMatch(/expected "OFBBR-[0-9a-f-]+" in the certificate/);
});

it('refuses an SSA older than the 5 minutes the Brazilian directory allows', async () => {
  const res = await register(await brazilTpp({ iat: Math.floor(Date.now() / 1000) - 600 }));
  expect(res.status).toBe(400);
  expect(res.body.error).toBe('invalid_software_statement');
  expect(res.body.error_description).toBe('software_statement is older than the 300 s Open Finance Brasil (test) allows (iat); fetch a fresh one');
});

it('accepts an SSA without exp, bounded by its age (Open Finance Brasil), but not one dated in the future', async () => {
  expect((await register(await brazilTpp())).status).toBe(201);
  const res = await register(await brazilTpp({ iat: Math.floor(Date.now() / 1000) + 3600 }));
  expect(res).toEqual({
    status: 400,
    body: { error: 'invalid_software_statement', error_description: 'software_statement is dated in the future (iat); a directory issues statements for now' },
  });
});

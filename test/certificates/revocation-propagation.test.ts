import * as oauth from 'oauth4webapi';
import { issueLeaf } from '../../src/sandbox/certificate-issuing.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp, registerTpp, issueTpp, tlsFetch, type FetchLike, type RegisteredTpp } from '../support/tpp-client.ts';
import { startRevocationAuthority, type RevocationAuthority } from '../support/revocation-authority.ts';

/*
 * The certificate lifecycle end to end, with a real CA's OCSP responder and CRL on loopback:
 * a TPP registers an eIDAS-style certificate, gets a certificate-bound token that works; the CA
 * revokes the certificate; within one check interval the client can no longer authenticate, the
 * token introspects inactive for the bank's resource server, and the API refuses it.
 */

const API = 'https://api.bank.example/accounts';

let h: Harness;
let authority: RevocationAuthority;
let rs: FetchLike & { close(): Promise<void> };
let tpp: RegisteredTpp;

beforeAll(async () => {
  h = await startMoat({
    config: {
      certificates: { revocation: { checkIntervalSeconds: 1 } },
      resourceServers: [
        { identifier: API, scopes: ['accounts', 'payments'], client: { clientId: 'rs-accounts', tlsClientAuthSubjectDn: 'CN=rs-accounts,O=Moat Bank,C=GB' } },
      ],
    },
  });
  const material = await ensureSandboxMaterial(h.config.dataDir);
  authority = await startRevocationAuthority({ certPem: material.tppCaPem, keyPem: material.tppCaKeyPem });
  const rsCert = await issueLeaf(
    { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem },
    { subject: [{ C: ['GB'] }, { O: ['Moat Bank'] }, { CN: ['rs-accounts'] }], usage: 'clientAuth', now: new Date() },
  );
  rs = tlsFetch(material.serverCaPem, { certPem: rsCert.certPem, keyPem: rsCert.keyPem });
  tpp = await onboardTpp(h, { roles: ['AISP', 'PISP'], certificate: { eidas: true, ocspUrl: authority.ocspUrl, crlUrl: authority.crlUrl } });
});

afterAll(async () => {
  await tpp?.close();
  await rs?.close();
  await authority?.close();
  await h?.close();
});

async function rsIntrospect(token: string): Promise<Record<string, unknown>> {
  const res = await rs(`${h.issuer}/introspect`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'rs-accounts', token }).toString(),
  });
  return res.json() as Promise<Record<string, unknown>>;
}

async function waitFor(condition: () => Promise<boolean>, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('registers the certificate with its PSD2 roles, NCA, organisation identifier, key and revocation pointers', async () => {
  const registered = await h.moat.certificates.registry.find(tpp.creds.summary['x5t#S256'] as string);
  expect(registered).toEqual(
    expect.objectContaining({
      status: 'active',
      usage: 'transport',
      keyType: 'ec',
      keySize: 256,
      psd2: { roles: ['PSP_AI', 'PSP_PI'], ncaName: 'Moat Sandbox Authority', ncaId: 'GB-SBX' },
      organizationIdentifier: expect.stringMatching(/^PSDGB-SBX-/),
      ocspUrls: [authority.ocspUrl],
      crlUrls: [authority.crlUrl],
      clients: [tpp.client.client_id],
    }),
  );
  // The signing certificate of the key in the software statement (x5c) is registered beside it.
  const signing = (await h.moat.certificates.registry.list({ clientId: tpp.client.client_id })).filter((c) => c.usage === 'signing');
  expect(signing).toEqual([
    expect.objectContaining({
      status: 'active',
      subjectDn: expect.stringMatching(/^CN=.* signing, /),
      keyType: 'ec',
      issuerDn: 'CN=Moat Sandbox TPP CA, O=Moat Sandbox, C=GB',
    }),
  ]);
});

it('limits the scopes to the roles the regulator authorised in the certificate', async () => {
  // The software statement grants AISP and PISP; the certificate's QCStatement only PSP_AI.
  const creds = await issueTpp(h, { roles: ['AISP', 'PISP'], eidas: true, certificateRoles: ['AISP'] });
  const refused = await registerTpp(h, creds, { scope: 'openid accounts payments' });
  expect(refused.status).toBe(400);
  expect(refused.body).toEqual({
    error: 'invalid_client_metadata',
    error_description: 'scope payments requires one of the roles PISP; the software statement grants AISP',
  });
  const ok = await registerTpp(h, creds, { scope: 'openid accounts' });
  expect(ok.status).toBe(201);
  expect(ok.body.software_roles).toEqual(['AISP']);
  expect(ok.body.authorization_details_types).toEqual(['account_information']);
});

it('stops the client, its bound token and its refresh token within one check interval of the CA revoking the certificate', async () => {
  const { tokens } = await authorizationCodeFlow(h, tpp, { extraParams: { resource: API } });
  expect((await rsIntrospect(tokens.access_token)).active).toBe(true);
  const cc = () =>
    oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts', resource: API }), {
      [oauth.customFetch]: tpp.fetch,
    });
  expect((await cc()).status).toBe(200);

  const serial = (await h.moat.certificates.registry.find(tpp.creds.summary['x5t#S256'] as string))!.serial;
  authority.revoke(serial);
  await waitFor(async () => (await h.moat.certificates.registry.statusOf(tpp.creds.summary['x5t#S256'] as string))?.status === 'revoked', 5000);

  expect((await rsIntrospect(tokens.access_token)).active).toBe(false);
  const refused = await cc();
  expect(refused.status).toBe(401);
  expect(((await refused.json()) as { error: string }).error).toBe('invalid_client');
  const refresh = await oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.refresh_token!, { [oauth.customFetch]: tpp.fetch });
  expect(refresh.status).toBe(401);

  const certificate = await h.moat.certificates.registry.find(tpp.creds.summary['x5t#S256'] as string);
  expect(certificate).toEqual(expect.objectContaining({ status: 'revoked', revocationSource: 'ocsp' }));
  const events = await h.moat.certificates.registry.events(certificate!.thumbprint);
  expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(['registered', 'linked', 'revoked']));
  expect(h.logs.some((l) => l.event === 'certificate.revoked' && l.thumbprint === certificate!.thumbprint)).toBe(true);
});

it('refuses to register a client with a certificate its CA has revoked', async () => {
  const creds = await issueTpp(h, { eidas: true, ocspUrl: authority.ocspUrl, crlUrl: authority.crlUrl });
  const { X509Certificate } = await import('node:crypto');
  authority.revoke(new X509Certificate(creds.certPem).serialNumber);
  const res = await registerTpp(h, creds);
  expect(res.status).toBe(401);
  expect(res.body).toEqual({
    error: 'invalid_client',
    error_description: expect.stringMatching(/^the transport certificate is revoked: revoked according to the OCSP responder/),
  });
});

describe('fail-closed (the production default)', () => {
  let closed: Harness;
  let closedAuthority: RevocationAuthority;
  beforeAll(async () => {
    closed = await startMoat({ config: { certificates: { revocation: { checkIntervalSeconds: 1, failMode: 'closed', timeoutMs: 500 } } } });
    const material = await ensureSandboxMaterial(closed.config.dataDir);
    closedAuthority = await startRevocationAuthority({ certPem: material.tppCaPem, keyPem: material.tppCaKeyPem });
  });
  afterAll(async () => {
    await closedAuthority?.close();
    await closed?.close();
  });

  it('refuses to register a certificate whose status nobody can vouch for', async () => {
    closedAuthority.set('ocsp', 'down');
    closedAuthority.set('crl', 'down');
    const creds = await issueTpp(closed, { ocspUrl: closedAuthority.ocspUrl, crlUrl: closedAuthority.crlUrl });
    const res = await registerTpp(closed, creds);
    expect(res.status).toBe(401);
    expect(res.body.error_description).toMatch(/^the revocation status of the transport certificate cannot be established \(OCSP .*HTTP 503.*CRL .*HTTP 503\)/);
    const bare = await registerTpp(closed, await issueTpp(closed));
    expect(bare.body.error_description).toMatch(/names no OCSP responder and no CRL/);
  });

  it('stops a registered client once its CA stops answering, and lets it back when the CA answers again', async () => {
    closedAuthority.set('ocsp', 'up');
    closedAuthority.set('crl', 'up');
    const client = await onboardTpp(closed, { certificate: { ocspUrl: closedAuthority.ocspUrl, crlUrl: closedAuthority.crlUrl } });
    try {
      const cc = () =>
        oauth.clientCredentialsGrantRequest(client.as, client.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts' }), {
          [oauth.customFetch]: client.fetch,
        });
      expect((await cc()).status).toBe(200);
      closedAuthority.set('ocsp', 'down');
      closedAuthority.set('crl', 'down');
      const thumbprint = client.creds.summary['x5t#S256'] as string;
      await waitFor(async () => (await closed.moat.certificates.registry.statusOf(thumbprint))?.lastCheckResult?.startsWith('unknown') === true, 5000);
      expect((await cc()).status).toBe(401);
      closedAuthority.set('ocsp', 'up');
      await waitFor(async () => (await closed.moat.certificates.registry.statusOf(thumbprint))?.lastCheckResult === 'good', 5000);
      expect((await cc()).status).toBe(200);
    } finally {
      await client.close();
    }
  });
});

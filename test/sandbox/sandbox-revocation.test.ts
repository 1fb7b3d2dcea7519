import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import * as pkijs from 'pkijs';
import { createRevocationChecker } from '../../src/certificates/revocation-checker.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { sandboxRevocationPointers } from '../../src/sandbox/revocation-services.ts';
import * as x509 from '../../src/pki/x509.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { onboardTpp, tlsFetch, type RegisteredTpp } from '../support/tpp-client.ts';
import { runMoat } from '../support/cli.ts';

/*
 * The sandbox CA's own revocation services: a TPP revokes its sandbox certificate with
 * `moat sandbox revoke`, the sandbox CRL lists it, the sandbox OCSP responder says so, and Moat
 * stops the TPP at its next certificate check — the whole path a real revocation takes.
 */

let h: Harness;
let tpp: RegisteredTpp;
beforeAll(async () => {
  h = await startMoat({ config: { certificates: { revocation: { checkIntervalSeconds: 1 } } } });
  tpp = await onboardTpp(h, { certificate: { eidas: true, ...sandboxRevocationPointers(h.issuer) } });
});
afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

const moat = (args: string[]) => runMoat(args, { cwd: tpp.creds.dir });

it('publishes a CRL signed by the sandbox TPP CA, and answers OCSP for its certificates', async () => {
  const material = await ensureSandboxMaterial(h.config.dataDir);
  const f = tlsFetch(material.serverCaPem);
  try {
    const res = await f(`${h.issuer}/sandbox/pki/tpp-ca.crl`);
    expect(res.headers.get('content-type')).toBe('application/pkix-crl');
    const crl = new x509.X509Crl(Buffer.from(await res.arrayBuffer()));
    expect(await crl.verify({ publicKey: new x509.X509Certificate(material.tppCaPem).publicKey })).toBe(true);
    const checker = createRevocationChecker({ extraCaPem: material.serverCaPem });
    const verdict = await checker.check(new X509Certificate(tpp.creds.certPem), new X509Certificate(material.tppCaPem), {
      ocspUrls: [sandboxRevocationPointers(h.issuer).ocspUrl],
      crlUrls: [],
    });
    expect(verdict).toEqual(expect.objectContaining({ status: 'good', source: 'ocsp' }));
    const garbage = await f(`${h.issuer}/sandbox/pki/ocsp`, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: 'not DER' });
    expect(garbage.status).toBe(200);
    expect(pkijs.OCSPResponse.fromBER(await garbage.arrayBuffer()).responseStatus.valueBlock.valueDec).toBe(1);
  } finally {
    await f.close();
  }
});

it('revokes a sandbox certificate from the CLI, and Moat stops the TPP at its next check', async () => {
  const cc = () =>
    oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts' }), {
      [oauth.customFetch]: tpp.fetch,
    });
  expect((await cc()).status).toBe(200);
  writeFileSync(join(tpp.creds.dir, 'moat.yaml'), `issuer: ${h.issuer}\ndataDir: ${h.config.dataDir}\n`);
  const r = await moat(['sandbox', 'revoke', '--cert', 'transport.pem', '--key', 'transport.key']);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/^revoked serial [0-9a-f]+ \(x5t#S256 .+\); Moat learns of it from the OCSP responder at the next certificate check\n$/);
  const thumbprint = tpp.creds.summary['x5t#S256'] as string;
  const until = Date.now() + 5000;
  while ((await h.moat.certificates.registry.statusOf(thumbprint))?.status !== 'revoked') {
    if (Date.now() > until) throw new Error('not revoked within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect((await cc()).status).toBe(401);
});

it('revokes only certificates of the sandbox CA, proven by presenting them', async () => {
  const f = tlsFetch(tpp.creds.serverCaPem);
  try {
    const res = await f(`${h.issuer}/sandbox/pki/revoke`, { method: 'POST' });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
  } finally {
    await f.close();
  }
});

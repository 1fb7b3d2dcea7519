import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { CERTIFICATE_EXPIRING_EVENT } from '../../src/certificates/expiry-notices.ts';
import { adminRequest } from '../support/admin-api.ts';
import { adminToken, sampleSum, scrapeMetrics } from '../support/admin-metrics.ts';
import { runMoat } from '../support/cli.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { createTestCa, issueLeaf } from '../support/pki.ts';
import { issueTpp, registerTpp, tlsFetch, type TppCredentials } from '../support/tpp-client.ts';

/*
 * TPPs told before their certificates expire (issue 21): at a warning horizon Moat POSTs a Security
 * Event Token (RFC 8417) signed with its published keys to the client's moat_notification_uri
 * (RFC 8935 push delivery), once; the TPP sees it in /diagnostics/certificates, the operator sees who
 * has not renewed (admin API, `moat certs unrenewed`), and `moat sandbox renew` gives the next
 * certificate for the RFC 7592 update. A real HTTPS receiver stands in for the TPP's endpoint.
 */

interface Received {
  path: string;
  contentType: string | undefined;
  body: string;
}

let h: Harness;
let receiver: Server;
let receiverPort: number;
const received: Received[] = [];
const hanging = new Set<Socket>();
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-notices-'));
  const ca = await createTestCa([{ CN: ['Notice Receiver CA'] }]);
  const leaf = await issueLeaf(ca, { subject: [{ CN: ['localhost'] }], eku: ['serverAuth'], san: { dns: ['localhost'], ip: ['127.0.0.1'] } });
  writeFileSync(join(dir, 'receiver-ca.pem'), ca.certPem);
  receiver = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      received.push({ path: req.url ?? '', contentType: req.headers['content-type'], body });
      // /hang never answers; the socket is closed when the test ends.
      if (req.url === '/hang') return void hanging.add(req.socket);
      res.statusCode = 202;
      res.end();
    });
  });
  await new Promise<void>((done) => receiver.listen(0, '127.0.0.1', done));
  receiverPort = (receiver.address() as { port: number }).port;
  h = await startMoat({ config: { certificates: { expiryNotices: { caFile: join(dir, 'receiver-ca.pem'), timeoutMs: 2000, retryBaseSeconds: 60 } } } });
}, 60_000);

afterAll(async () => {
  await h?.close();
  for (const socket of hanging) socket.destroy();
  await new Promise((done) => receiver.close(done));
  rmSync(dir, { recursive: true, force: true });
});

/** A sandbox TPP whose transport certificate was issued 358 days ago, so it expires in under 7 days. */
async function expiringTpp(endpointPath: string | undefined): Promise<{ creds: TppCredentials; clientId: string; rat: string; thumbprint: string }> {
  const creds = await issueTpp(h, { now: new Date(Date.now() - 358 * 86_400_000) });
  const reg = await registerTpp(h, creds, endpointPath === undefined ? {} : { moat_notification_uri: `https://localhost:${receiverPort}${endpointPath}` });
  if (reg.status !== 201) throw new Error(`registration failed: ${JSON.stringify(reg.body)}`);
  return { creds, clientId: reg.body.client_id as string, rat: reg.body.registration_access_token as string, thumbprint: creds.summary['x5t#S256'] as string };
}

async function diagnosticsOf(creds: { serverCaPem: string; certPem: string; keyPem: string }): Promise<{ status: number; body: any }> {
  const f = tlsFetch(creds.serverCaPem, creds);
  try {
    const res = await f(`${h.issuer}/diagnostics/certificates`);
    return { status: res.status, body: await res.json() };
  } finally {
    await f.close();
  }
}

describe('registration of a notification endpoint', () => {
  it.each([
    ['an http URL', 'http://localhost/notices', /must be an https URL/],
    ['something that is no URL', 'notices please', /must be an absolute https URL/],
    ['a URL with credentials', 'https://user:pw@localhost/notices', /must not carry credentials/],
    ['a number', 42, /must be a string/],
  ])('refuses %s with invalid_client_metadata', async (_name, value, message) => {
    const creds = await issueTpp(h);
    const reg = await registerTpp(h, creds, { moat_notification_uri: value });
    expect(reg.status).toBe(400);
    expect(reg.body.error).toBe('invalid_client_metadata');
    expect(reg.body.error_description).toMatch(message);
  });
});

describe('an expiry notice (RFC 8417 SET, RFC 8935 push)', () => {
  let tpp: Awaited<ReturnType<typeof expiringTpp>>;
  beforeAll(async () => {
    tpp = await expiringTpp('/ok');
  });

  // The sandbox TPP's signing certificate was issued with its transport one: both expire, both are told.
  it('is POSTed once per horizon and certificate, signed with a key of the published JWKS, naming the certificate and days left', async () => {
    const pass = await h.moat.certificates.monitor.runOnce();
    expect(pass.expiring).toEqual(expect.arrayContaining([{ thumbprint: tpp.thumbprint, daysLeft: 6 }]));
    const deliveredBefore = sampleSum(await scrapeMetrics(h), 'moat_certificate_expiry_notices_total', { outcome: 'delivered' });
    expect(await h.moat.certificates.notices!.deliverDue()).toEqual({ delivered: 2, failed: 0 });
    expect(sampleSum(await scrapeMetrics(h), 'moat_certificate_expiry_notices_total', { outcome: 'delivered' })).toBe(deliveredBefore + 2);

    const notices = received.filter((r) => r.path === '/ok');
    expect(notices).toHaveLength(2);
    // RFC 8935 §2: the SET is the body, as application/secevent+jwt.
    expect(notices.map((n) => n.contentType)).toEqual(['application/secevent+jwt', 'application/secevent+jwt']);

    const f = tlsFetch(tpp.creds.serverCaPem);
    let jwks: JSONWebKeySet;
    try {
      const discovery = (await (await f(`${h.issuer}/.well-known/openid-configuration`)).json()) as { jwks_uri: string };
      jwks = (await (await f(discovery.jwks_uri)).json()) as JSONWebKeySet;
    } finally {
      await f.close();
    }
    const verified = await Promise.all(
      notices.map((n) => jwtVerify(n.body, createLocalJWKSet(jwks), { issuer: h.issuer, audience: tpp.clientId, typ: 'secevent+jwt' })),
    );
    const transport = verified.find((v) => (v.payload.events as Record<string, { usage: string }>)[CERTIFICATE_EXPIRING_EVENT]!.usage === 'transport')!;
    expect(transport.protectedHeader.kid).toEqual(expect.any(String));
    expect(transport.payload.jti).toEqual(expect.any(String));
    expect(transport.payload.events).toEqual({
      [CERTIFICATE_EXPIRING_EVENT]: expect.objectContaining({
        'x5t#S256': tpp.thumbprint,
        days_left: 6,
        horizon_days: 7,
        usage: 'transport',
        renew_at: `${h.issuer}/register/${tpp.clientId}`,
      }),
    });

    // The same horizon again: nothing more is sent.
    await h.moat.certificates.monitor.runOnce();
    expect(await h.moat.certificates.notices!.deliverDue()).toEqual({ delivered: 0, failed: 0 });
    expect(received.filter((r) => r.path === '/ok')).toHaveLength(2);
  });

  it('is shown to the TPP at /diagnostics/certificates over mutual TLS', async () => {
    const seen = await diagnosticsOf(tpp.creds);
    expect(seen.status).toBe(200);
    expect(seen.body.certificates).toEqual(
      expect.arrayContaining([expect.objectContaining({ thumbprint: tpp.thumbprint, usage: 'transport', daysLeft: 6, status: 'active' })]),
    );
    expect(seen.body.notices).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ 'x5t#S256': tpp.thumbprint, clientId: tpp.clientId, horizonDays: 7, status: 'delivered', attempts: 1 }),
      ]),
    );
    expect(seen.body.notices).toHaveLength(2);
  });

  it('refuses /diagnostics/certificates without a client certificate (invalid_client)', async () => {
    const f = tlsFetch(tpp.creds.serverCaPem);
    try {
      const res = await f(`${h.issuer}/diagnostics/certificates`);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    } finally {
      await f.close();
    }
  });

  it('lists the TPP as not renewed for the operator until `moat sandbox renew` and an RFC 7592 update register the next certificate', async () => {
    const token = adminToken(h);
    const before = await adminRequest(h.moat.adminPort!, 'GET', '/renewals', { token });
    expect(before.status).toBe(200);
    expect(before.body).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          thumbprint: tpp.thumbprint,
          clients: [expect.objectContaining({ clientId: tpp.clientId, notices: [expect.objectContaining({ status: 'delivered', horizonDays: 7 })] })],
        }),
      ]),
    );
    const adminArgs = ['--data-dir', h.dataDir, '--admin-url', `http://127.0.0.1:${h.moat.adminPort}`];
    const cli = await runMoat(['certs', 'unrenewed', ...adminArgs]);
    expect(cli.err).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.out).toContain(tpp.thumbprint);
    expect(cli.out).toContain(`client ${tpp.clientId}  notices: 7d delivered`);

    const renew = await runMoat(['sandbox', 'renew', '--credentials', tpp.creds.dir, '--data-dir', h.dataDir, '--json']);
    expect(renew.err).toBe('');
    expect(renew.code).toBe(0);
    const next = JSON.parse(renew.out) as { certFile: string; keyFile: string; 'x5t#S256': string; subjectDn: string };
    expect(next.subjectDn).toBe(tpp.creds.summary.tls_client_auth_subject_dn);
    const nextCert = { certPem: readFileSync(next.certFile, 'utf8'), keyPem: readFileSync(next.keyFile, 'utf8') };
    const f = tlsFetch(tpp.creds.serverCaPem, nextCert);
    try {
      const update = await f(`${h.issuer}/register/${tpp.clientId}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tpp.rat}` },
        body: JSON.stringify({ ...tpp.creds.registration, client_id: tpp.clientId, moat_notification_uri: `https://localhost:${receiverPort}/ok` }),
      });
      expect(update.status).toBe(200);
    } finally {
      await f.close();
    }
    const after = await adminRequest(h.moat.adminPort!, 'GET', '/renewals', { token });
    expect(after.body.map((c: { thumbprint: string }) => c.thumbprint)).not.toContain(tpp.thumbprint);
    expect((await runMoat(['certs', 'unrenewed', ...adminArgs])).out).not.toContain(tpp.thumbprint);
  });

  it('refuses a bad window on /renewals with invalid_request', async () => {
    const res = await adminRequest(h.moat.adminPort!, 'GET', '/renewals?within=soon', { token: adminToken(h) });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: 'within must be a number of seconds' });
  });
});

describe('moat sandbox renew', () => {
  it('refuses credentials the sandbox CA did not issue, and a missing --credentials, saying why', async () => {
    const foreign = join(dir, 'foreign');
    mkdirSync(foreign);
    const ca = await createTestCa([{ CN: ['Not The Sandbox CA'] }]);
    writeFileSync(join(foreign, 'transport.pem'), (await issueLeaf(ca, { subject: [{ CN: ['someone'] }] })).certPem);
    const refused = await runMoat(['sandbox', 'renew', '--credentials', foreign, '--data-dir', h.dataDir]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain("was not issued by this sandbox's TPP CA");
    const empty = await runMoat(['sandbox', 'renew', '--credentials', join(dir, 'nowhere'), '--data-dir', h.dataDir]);
    expect(empty.code).toBe(1);
    expect(empty.err).toContain('no transport.pem in');
    expect((await runMoat(['sandbox', 'renew'])).code).toBe(2);
  });
});

describe('a notification endpoint that hangs', () => {
  it('is given up on after the timeout, retried later with back-off, and holds no request up meanwhile', async () => {
    const tpp = await expiringTpp('/hang');
    await h.moat.certificates.monitor.runOnce();
    const retriesBefore = sampleSum(await scrapeMetrics(h), 'moat_certificate_expiry_notices_total', { outcome: 'retry' });
    const pass = h.moat.certificates.notices!.deliverDue();
    // While the delivery waits on the endpoint, Moat answers as ever.
    const f = tlsFetch(tpp.creds.serverCaPem);
    try {
      expect((await f(`${h.issuer}/.well-known/openid-configuration`)).status).toBe(200);
    } finally {
      await f.close();
    }
    expect((await adminRequest(h.moat.adminPort!, 'GET', '/renewals', { token: adminToken(h) })).status).toBe(200);
    // Its transport and signing certificates' notices, attempted side by side.
    expect(await pass).toEqual({ delivered: 0, failed: 2 });
    expect(received.filter((r) => r.path === '/hang')).toHaveLength(2);
    // Failed attempts that will be retried: counted as retry, not yet as failed (given up).
    const metrics = await scrapeMetrics(h);
    expect(sampleSum(metrics, 'moat_certificate_expiry_notices_total', { outcome: 'retry' })).toBe(retriesBefore + 2);
    expect(sampleSum(metrics, 'moat_certificate_expiry_notices_total', { outcome: 'failed' })).toBe(0);

    const seen = await diagnosticsOf(tpp.creds);
    const notice = seen.body.notices.find((n: { 'x5t#S256': string }) => n['x5t#S256'] === tpp.thumbprint);
    expect(notice).toEqual(expect.objectContaining({ status: 'pending', attempts: 1, lastError: 'no answer within 2000 ms' }));
    // The first retry waits retryBaseSeconds (60 s): not due on the next pass.
    expect(new Date(notice.nextAttemptAt).getTime() - new Date(notice.raisedAt).getTime()).toBeGreaterThanOrEqual(60_000);
    expect(await h.moat.certificates.notices!.deliverDue()).toEqual({ delivered: 0, failed: 0 });
  }, 30_000);
});

describe('a client without a notification endpoint', () => {
  it('gets no webhook; the notice is recorded as no_endpoint for the TPP and the operator to see', async () => {
    const tpp = await expiringTpp(undefined);
    await h.moat.certificates.monitor.runOnce();
    const { notices } = (await diagnosticsOf(tpp.creds)).body;
    expect(notices).toEqual(
      expect.arrayContaining([expect.objectContaining({ 'x5t#S256': tpp.thumbprint, clientId: tpp.clientId, status: 'no_endpoint', attempts: 0 })]),
    );
    expect(notices.every((n: { status: string }) => n.status === 'no_endpoint')).toBe(true);
    expect(received.filter((r) => r.path === '/ok')).toHaveLength(2);
  });
});

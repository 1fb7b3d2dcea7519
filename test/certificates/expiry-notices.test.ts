import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { certificateProfile } from '../../src/certificates/certificate-profile.ts';
import { backoffSeconds, createExpiryNotices, type ExpiryNotices } from '../../src/certificates/expiry-notices.ts';
import { createHttpsNoticeDelivery } from '../../src/certificates/notice-delivery.ts';
import { createSqlCertificateRegistry } from '../../src/storage/sql/certificate-registry.ts';
import { createSqlExpiryNoticeStore } from '../../src/storage/sql/expiry-notice-store.ts';
import { createJwsSigner } from '../../src/keys/jws-signer.ts';
import { generateSigningKey, providerJwks } from '../../src/keys/signing-keys.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { issueLeaf as issueSandboxLeaf } from '../../src/sandbox/certificate-issuing.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import type { SqlClient } from '../../src/storage/sql/sql-client.ts';
import { migratedSqlBackends } from '../support/databases.ts';
import { createTestCa, issueLeaf } from '../support/pki.ts';

/*
 * Expiry notices on every SQL backend: raised once per certificate, client and horizon however many
 * instances raise them, delivered by one instance only when two deliver at once, and a failing
 * endpoint retried with doubling back-off (clock controlled) until the attempts run out.
 */

let receiver: Server;
let receiverPort: number;
let receiverCa: string;
const received: string[] = [];

beforeAll(async () => {
  const ca = await createTestCa([{ CN: ['Receiver CA'] }]);
  const leaf = await issueLeaf(ca, { subject: [{ CN: ['localhost'] }], eku: ['serverAuth'], san: { dns: ['localhost'] } });
  receiverCa = ca.certPem;
  receiver = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    req.resume();
    req.on('end', () => {
      received.push(req.url ?? '');
      if (req.url === '/refuse') {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ err: 'invalid_audience', description: 'not for us' }));
        return;
      }
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((done) => receiver.listen(0, '127.0.0.1', done));
  receiverPort = (receiver.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((done) => receiver.close(done));
});

it('doubles the wait after each failed attempt, up to six hours', () => {
  expect([1, 2, 3, 4].map((n) => backoffSeconds(n, 60))).toEqual([60, 120, 240, 480]);
  expect(backoffSeconds(30, 60)).toBe(6 * 3600);
});

describe.each(migratedSqlBackends())('expiry notices on %s', (_name, open) => {
  let sql: SqlClient;
  let drop: () => Promise<void>;
  let dir: string;
  let thumbprint: string;
  let clock: Date;

  beforeAll(async () => {
    ({ sql, drop } = await open());
    dir = mkdtempSync(join(tmpdir(), 'moat-notices-'));
    await sql.query("INSERT INTO tpp_organisation (org_id, name, directory_issuer, status) VALUES ('org-1', 'Org', 'dir', 'Active')");
  });
  afterAll(async () => {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A certificate expiring in five days, registered for `clientId`. */
  async function expiringCertificate(clientId: string) {
    const material = await ensureSandboxMaterial(join(dir, 'data'));
    const issued = await issueSandboxLeaf(
      { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem },
      { subject: [{ CN: [clientId] }], usage: 'clientAuth', now: new Date(), days: 5 },
    );
    const profile = certificateProfile(new X509Certificate(issued.certPem));
    const registry = createSqlCertificateRegistry(sql);
    await registry.register(profile, { orgId: 'org-1', usage: 'transport', clientId, issuerPem: material.tppCaPem });
    thumbprint = profile.thumbprint;
    return (await registry.find(profile.thumbprint))!;
  }

  async function instance(endpointPath: string, options: { maxAttempts?: number } = {}): Promise<ExpiryNotices> {
    return createExpiryNotices({
      store: createSqlExpiryNoticeStore(sql),
      registry: createSqlCertificateRegistry(sql),
      signer: await createJwsSigner(providerJwks([await generateSigningKey('ES256', 'active', 0)])),
      delivery: createHttpsNoticeDelivery({ timeoutMs: 5000, caPem: receiverCa }),
      endpointOf: async () => `https://localhost:${receiverPort}${endpointPath}`,
      issuer: 'https://moat.example',
      logger: createLogger('silent', new Writable({ write: (_c, _e, done) => done() })),
      maxAttempts: options.maxAttempts ?? 8,
      retryBaseSeconds: 60,
      intervalSeconds: 30,
      timeoutMs: 5000,
      now: () => clock,
    });
  }

  beforeEach(() => {
    received.length = 0;
  });

  it('sends one notice when two instances raise and deliver it at the same time', async () => {
    clock = new Date();
    const certificate = await expiringCertificate('client-twice');
    const [a, b] = [await instance('/twice'), await instance('/twice')];
    await Promise.all([a.raise(certificate, 7, 4), b.raise(certificate, 7, 4)]);
    const passes = await Promise.all([a.deliverDue(), b.deliverDue()]);
    expect(passes.reduce((n, p) => n + p.delivered, 0)).toBe(1);
    expect(received.filter((r) => r === '/twice')).toHaveLength(1);
    expect(await a.list({ thumbprints: [thumbprint] })).toEqual([expect.objectContaining({ status: 'delivered', attempts: 1, horizonDays: 7 })]);
  });

  it('retries a refusing endpoint after 60, then 120 s, and gives up after the last attempt with the reason kept', async () => {
    const start = new Date();
    clock = start;
    const notices = await instance('/refuse', { maxAttempts: 3 });
    await notices.raise(await expiringCertificate('client-refused'), 7, 4);
    const at = (seconds: number) => {
      clock = new Date(start.getTime() + seconds * 1000);
    };

    expect(await notices.deliverDue()).toEqual({ delivered: 0, failed: 1 });
    at(59);
    expect(await notices.deliverDue()).toEqual({ delivered: 0, failed: 0 });
    at(60);
    expect(await notices.deliverDue()).toEqual({ delivered: 0, failed: 1 });
    at(60 + 119);
    expect(await notices.deliverDue()).toEqual({ delivered: 0, failed: 0 });
    at(60 + 120);
    expect(await notices.deliverDue()).toEqual({ delivered: 0, failed: 1 });
    at(100_000);
    expect(await notices.deliverDue()).toEqual({ delivered: 0, failed: 0 });

    expect(received.filter((r) => r === '/refuse')).toHaveLength(3);
    expect(await notices.list({ thumbprints: [thumbprint] })).toEqual([
      expect.objectContaining({
        status: 'failed',
        attempts: 3,
        lastError: 'the endpoint answered HTTP 400: {"err":"invalid_audience","description":"not for us"}',
      }),
    ]);
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import { certificateProfile } from '../../src/certificates/certificate-profile.ts';
import { createRevocationChecker } from '../../src/certificates/revocation-checker.ts';
import { createRevocationMonitor } from '../../src/certificates/revocation-monitor.ts';
import { createSqlCertificateRegistry } from '../../src/storage/sql/certificate-registry.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { issueLeaf } from '../../src/sandbox/certificate-issuing.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { createPgliteSqlClient, type SqlClient } from '../../src/storage/sql/sql-client.ts';
import { copyMigratedEmbeddedDatabase } from '../support/databases.ts';

/*
 * Expiry monitoring: a certificate nearing its end is reported once per warning horizon, with the
 * days left, for the operator (log, `moat certs expiring`) and the metrics to come.
 */

let dir: string;
let sql: SqlClient;
const logs: Record<string, unknown>[] = [];
beforeAll(async () => {
  // A migrated copy of the template (databases.ts); migrating an empty database is migrations.test.ts's.
  dir = mkdtempSync(join(tmpdir(), 'moat-expiry-'));
  await copyMigratedEmbeddedDatabase(join(dir, 'db'));
  sql = await createPgliteSqlClient(join(dir, 'db'));
  await sql.query("INSERT INTO tpp_organisation (org_id, name, directory_issuer, status) VALUES ('org-1', 'Org', 'dir', 'Active')");
});
afterAll(async () => {
  await sql.close();
  rmSync(dir, { recursive: true, force: true });
});

it('warns once per horizon crossed, naming the days left', async () => {
  const material = await ensureSandboxMaterial(join(dir, 'data'));
  const registry = createSqlCertificateRegistry(sql);
  const issue = async (days: number) => {
    const c = await issueLeaf(
      { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem },
      { subject: [{ CN: [`expires-in-${days}`] }], usage: 'clientAuth', now: new Date(), days },
    );
    await registry.register(certificateProfile(new X509Certificate(c.certPem)), { orgId: 'org-1', usage: 'transport', issuerPem: material.tppCaPem });
    return certificateProfile(new X509Certificate(c.certPem)).thumbprint;
  };
  const soon = await issue(10);
  const later = await issue(200);
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l) logs.push(JSON.parse(l));
      done();
    },
  });
  let now = new Date();
  const monitor = createRevocationMonitor({
    registry,
    checker: createRevocationChecker(),
    logger: createLogger('info', sink),
    intervalSeconds: 60,
    expiryWarningDays: [30, 14, 7, 1],
    now: () => now,
  });
  const first = await monitor.runOnce();
  expect(first.expiring).toEqual([{ thumbprint: soon, daysLeft: 9 }]);
  expect(logs.filter((l) => l.event === 'certificate.expiring')).toEqual([expect.objectContaining({ thumbprint: soon, daysLeft: 9, horizonDays: 14 })]);
  expect((await monitor.runOnce()).expiring).toEqual([]);
  // Four days on, the 7-day horizon is crossed: one more warning.
  now = new Date(Date.now() + 4 * 86_400_000);
  expect((await monitor.runOnce()).expiring).toEqual([{ thumbprint: soon, daysLeft: 5 }]);
  expect((await registry.events(soon)).map((e) => e.event)).toEqual(expect.arrayContaining(['expiry-warning-14d', 'expiry-warning-7d']));
  expect(first.expiring.map((e) => e.thumbprint)).not.toContain(later);
});

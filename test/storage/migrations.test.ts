import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyMigrations, migrationFiles, pendingMigrations } from '../../src/storage/sql/migrate.ts';
import { createPgliteSqlClient } from '../../src/storage/sql/sql-client.ts';
import { type SqlBackend, sqlBackends } from '../support/databases.ts';

/*
 * On PGlite, one cluster is created from nothing here (initdb inside WebAssembly, seconds of CPU)
 * and closed, and each test opens a copy of its files: the same empty database for each test,
 * without a second initdb. Creating a cluster from nothing stays covered (the first copy's source).
 */
let emptyCluster: Promise<string> | undefined;
function emptyPgliteCluster(): Promise<string> {
  emptyCluster ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-sql-empty-'));
    const sql = await createPgliteSqlClient(join(dir, 'pglite'));
    await sql.close();
    return dir;
  })();
  return emptyCluster;
}
afterAll(async () => {
  if (emptyCluster !== undefined) rmSync(await emptyCluster, { recursive: true, force: true });
});

const backends: SqlBackend[] = sqlBackends().map(([name, open]): SqlBackend => {
  if (name !== 'PGlite') return [name, open];
  return [
    name,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'moat-sql-'));
      cpSync(join(await emptyPgliteCluster(), 'pglite'), join(dir, 'pglite'), { recursive: true });
      const sql = await createPgliteSqlClient(join(dir, 'pglite'));
      return {
        sql,
        drop: async () => {
          await sql.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ];
});

describe.each(backends)('migrations on %s', (_name, open) => {
  it('apply to an empty database, then find nothing to do on the migrated one', async () => {
    const { sql, drop } = await open();
    try {
      const all = migrationFiles().map((m) => m.version);
      expect(all.length).toBeGreaterThan(0);
      expect(await pendingMigrations(sql)).toEqual(all);
      expect((await applyMigrations(sql)).applied).toEqual(all);
      expect(await pendingMigrations(sql)).toEqual([]);
      expect((await applyMigrations(sql)).applied).toEqual([]);
      const { rows } = await sql.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
      );
      expect(rows.map((r) => r.table_name)).toEqual([
        'audit_event',
        'certificate_expiry_notice',
        'client_certificate',
        'client_restriction',
        'client_tpp',
        'consent',
        'consent_event',
        'consent_use',
        'customer',
        'customer_account',
        'customer_totp',
        'customer_totp_used_step',
        'decoupled_request',
        'federated_customer',
        'moat_instance',
        'oidc_model',
        'passkey_credential',
        'passkey_user_handle',
        'sandbox_revoked_certificate',
        'schema_migrations',
        'signing_key',
        'threat_flag',
        'tpp_certificate',
        'tpp_certificate_event',
        'tpp_organisation',
      ]);
    } finally {
      await drop();
    }
  });

  it('are applied once when several runners race', async () => {
    const { sql, drop } = await open();
    try {
      const results = await Promise.all([applyMigrations(sql), applyMigrations(sql), applyMigrations(sql)]);
      expect(results.flatMap((r) => r.applied).sort()).toEqual(migrationFiles().map((m) => m.version));
    } finally {
      await drop();
    }
  });
});

describe('migration files', () => {
  it('are timestamped, ordered and each says why it exists', async () => {
    const { readFileSync } = await import('node:fs');
    for (const m of migrationFiles()) {
      expect(m.version).toMatch(/^\d{14}_[a-z0-9_]+$/);
      expect(readFileSync(m.file, 'utf8')).toMatch(/^-- /);
    }
  });
});

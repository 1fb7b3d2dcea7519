import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyMigrations, migrationFiles, pendingMigrations } from '../../src/storage/sql/migrate.ts';
import { createPgliteSqlClient, createPgSqlClient, type SqlClient } from '../../src/storage/sql/sql-client.ts';
import { createThrowawayPostgres, embeddedOnly } from '../support/databases.ts';

const backends: [string, () => Promise<{ sql: SqlClient; drop(): Promise<void> }>][] = [
  ['PGlite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-migrate-'));
    const sql = await createPgliteSqlClient(dir);
    return { sql, drop: async () => { await sql.close(); rmSync(dir, { recursive: true, force: true }); } };
  }],
];
if (!embeddedOnly()) {
  backends.push(['Postgres', async () => {
    const db = await createThrowawayPostgres();
    const sql = createPgSqlClient(db.url);
    return { sql, drop: async () => { await sql.close(); await db.drop(); } };
  }]);
}

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
      expect(rows.map((r) => r.table_name)).toEqual(['audit_event', 'client_certificate', 'client_tpp', 'consent', 'consent_event', 'customer', 'customer_account', 'oidc_model', 'sandbox_revoked_certificate', 'schema_migrations', 'tpp_certificate', 'tpp_certificate_event', 'tpp_organisation']);
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

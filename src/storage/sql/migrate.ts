import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SqlClient } from './sql-client.ts';

/** The top-level migrations/ folder, found from this file so the working directory does not matter. */
export const MIGRATIONS_DIR = join(import.meta.dirname, '..', '..', '..', 'migrations');

/** A constant key for pg_advisory_xact_lock: several instances starting at once migrate one at a time. */
const MIGRATION_LOCK_KEY = 0x6d6f6174; // "moat"

const FILE_PATTERN = /^(\d{14})_[a-z0-9_]+\.sql$/;

export function migrationFiles(dir = MIGRATIONS_DIR): { version: string; file: string }[] {
  return readdirSync(dir)
    .filter((f) => FILE_PATTERN.test(f))
    .sort()
    .map((f) => ({ version: f.replace(/\.sql$/, ''), file: join(dir, f) }));
}

async function ensureTable(sql: SqlClient): Promise<void> {
  await sql.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
}

async function appliedVersions(sql: SqlClient): Promise<Set<string>> {
  const { rows } = await sql.query<{ version: string }>('SELECT version FROM schema_migrations');
  return new Set(rows.map((r) => r.version));
}

/** Runs `fn` holding the migration lock, with the bookkeeping table in place. */
function locked<T>(sql: SqlClient, fn: (tx: SqlClient) => Promise<T>): Promise<T> {
  return sql.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    // Inside the lock: concurrent CREATE TABLE IF NOT EXISTS still collide in pg_type.
    await ensureTable(tx);
    return fn(tx);
  });
}

/** Versions on disk not yet applied (readiness fails while there are any). */
export async function pendingMigrations(sql: SqlClient, dir = MIGRATIONS_DIR): Promise<string[]> {
  const { rows } = await sql.query<{ exists: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS exists");
  const applied = rows[0]?.exists === true ? await appliedVersions(sql) : new Set<string>();
  return migrationFiles(dir)
    .map((m) => m.version)
    .filter((v) => !applied.has(v));
}

/**
 * Applies pending migrations, each in its own transaction, forward only. Safe to run again and
 * from several processes at once: the advisory lock serialises them and each re-checks what is
 * applied once it holds the lock.
 */
export async function applyMigrations(sql: SqlClient, dir = MIGRATIONS_DIR): Promise<{ applied: string[] }> {
  const applied: string[] = [];
  for (const migration of migrationFiles(dir)) {
    const done = await locked(sql, async (tx) => {
      const { rows } = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
      if (rows.length > 0) return false;
      await tx.exec(readFileSync(migration.file, 'utf8'));
      await tx.query('INSERT INTO schema_migrations (version) VALUES ($1)', [migration.version]);
      return true;
    });
    if (done) applied.push(migration.version);
  }
  return { applied };
}

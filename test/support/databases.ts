import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedSandboxAccounts } from '../../src/storage/sql/account-directory.ts';
import { seedSandboxCustomers } from '../../src/storage/sql/customer-directory.ts';
import { applyMigrations, MIGRATIONS_DIR } from '../../src/storage/sql/migrate.ts';
import { createPgliteSqlClient, createPgSqlClient, type SqlClient } from '../../src/storage/sql/sql-client.ts';
import { Redis } from 'ioredis';
import { scratchRoot } from './scratch.ts';
import pg from 'pg';

/*
 * Throwaway databases for tests: each caller gets its own Postgres database and its own Redis key
 * prefix, created here and dropped by the caller's cleanup. Never the shared data of other tests.
 */

export const POSTGRES_ADMIN_URL = process.env.TEST_MOAT_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_MOAT_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * True when the run is the embedded-default pass (or no services were found): the harness's
 * defaultBackend() then starts Moat on the embedded default. To leave cases out of that pass, use
 * withServices() instead.
 */
export function embeddedOnly(): boolean {
  return process.env.TEST_MOAT_EMBEDDED_ONLY === '1';
}

/**
 * True unless this is the embedded-only pass: whether cases on the machine's Postgres and Redis run.
 * Only for leaving such cases out (describeWithServices, sqlBackends, a contract suite's Redis
 * backend): a suite that reads the pass only this way runs a subset of its services-pass tests on the
 * embedded pass, so scripts/backend-dependent-tests.mjs leaves it out of that pass. A test that picks
 * its backend by the pass uses the harness's defaultBackend() (or embeddedOnly()) and is re-run there.
 */
export function withServices(): boolean {
  return !embeddedOnly();
}

/** `describe` for suites that need the real Postgres and Redis; skipped, visibly, on the embedded pass. */
export const describeWithServices: jest.Describe = withServices() ? describe : describe.skip;

export async function createThrowawayPostgres(template?: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `moat_test_${randomBytes(6).toString('hex')}`;
  await withPostgresAdmin((admin) => admin.query(`CREATE DATABASE ${name}${template === undefined ? '' : ` TEMPLATE ${template}`}`));
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      await withPostgresAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/**
 * A throwaway Postgres database with every migration applied, for harnesses that start Moat. Applying
 * the migrations one by one was a second of every Moat start (more under load); one migrated database
 * is kept per migration set as a template and each harness gets a copy of it (CREATE DATABASE …
 * TEMPLATE: a file copy inside Postgres). Moat then applies migrations as on any start (none pending);
 * migrating an empty database stays covered by the migration tests, which use createThrowawayPostgres.
 */
export async function createMigratedThrowawayPostgres(options: TemplateOptions = {}): Promise<{ url: string; drop(): Promise<void> }> {
  const template = await migratedPostgresTemplate(options);
  return createThrowawayPostgres(template);
}

/**
 * sandboxSeeded: the template holds the sandbox's demo customers and accounts too, as a sandbox Moat
 * leaves its database after its first start. Seeding once hashed every demo password at full cost — over a
 * second of CPU per harness — and a sandbox Moat started on a seeded database skips what is there, as
 * on any restart. Building the template runs that seeding on an empty database of each backend, and
 * test/integration/quick-start.test.ts starts a sandbox on an empty one.
 */
export interface TemplateOptions {
  sandboxSeeded?: boolean;
}

/** Moat's own seeding, as its sandbox start runs it. */
async function prepareTemplate(sql: SqlClient, options: TemplateOptions): Promise<void> {
  await applyMigrations(sql);
  if (options.sandboxSeeded === true) {
    await seedSandboxCustomers(sql);
    await seedSandboxAccounts(sql);
  }
}

async function migratedPostgresTemplate(options: TemplateOptions): Promise<string> {
  const template = `moat_template_${templateKey(options)}`;
  if (await postgresDatabaseExists(template)) return template;
  // Built under another name and renamed when complete: a template that exists is migrated.
  const building = await createThrowawayPostgres();
  try {
    const sql = createPgSqlClient(building.url, { max: 1 });
    try {
      await prepareTemplate(sql, options);
    } finally {
      await sql.close();
    }
    await withPostgresAdmin(async (admin) => {
      try {
        await admin.query(`ALTER DATABASE ${building.name} RENAME TO ${template}`);
      } catch (err) {
        // Another worker finished first (42P04 duplicate_database): theirs is used, ours dropped.
        if ((err as { code?: string }).code !== '42P04') throw err;
      }
    });
  } finally {
    await building.drop();
  }
  return template;
}

async function postgresDatabaseExists(name: string): Promise<boolean> {
  return withPostgresAdmin(async (admin) => (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rows.length > 0);
}

async function withPostgresAdmin<T>(use: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  try {
    return await use(admin);
  } finally {
    await admin.end();
  }
}

/** Changes whenever a migration, the migration runner or the PGlite build does, so a template is never stale. */
function migrationSetKey(): string {
  const hash = createHash('sha256');
  for (const name of readdirSync(MIGRATIONS_DIR).sort()) hash.update(name).update(readFileSync(join(MIGRATIONS_DIR, name)));
  hash.update(readFileSync(join(MIGRATIONS_DIR, '..', 'src', 'storage', 'sql', 'migrate.ts')));
  hash.update(readFileSync(join(MIGRATIONS_DIR, '..', 'node_modules', '@electric-sql', 'pglite', 'package.json')));
  return hash.digest('hex').slice(0, 16);
}

/** The migration set's key, and for a seeded template the seed's sources: a changed demo customer is a new template. */
function templateKey(options: TemplateOptions): string {
  if (options.sandboxSeeded !== true) return migrationSetKey();
  const hash = createHash('sha256').update(migrationSetKey());
  for (const source of SANDBOX_SEED_SOURCES) hash.update(readFileSync(join(MIGRATIONS_DIR, '..', 'src', source)));
  return `${hash.digest('hex').slice(0, 16)}_sandbox`;
}

const SANDBOX_SEED_SOURCES = [
  'customers/sandbox-customers.ts',
  'customers/account-directory.ts',
  'customers/password-hash.ts',
  'storage/sql/customer-directory.ts',
  'storage/sql/account-directory.ts',
];

/**
 * Puts a migrated embedded database at `dir` (where Moat keeps it: `<dataDir>/pglite`). Creating a
 * PGlite cluster runs initdb inside WebAssembly — seconds of CPU per test harness, most of what an
 * embedded-pass suite spent — so one migrated cluster is made per migration set, kept under the
 * scratch root (scratch.ts) and shared by every worker and run, and each harness gets a copy of its
 * files. Moat then opens that copy and applies migrations as on any start (none pending); creating a cluster from
 * nothing stays covered by the quick-start and migration tests.
 */
export async function copyMigratedEmbeddedDatabase(dir: string, options: TemplateOptions = {}): Promise<void> {
  const template = join(scratchRoot(), `moat-pglite-template-${templateKey(options)}`);
  // Complete templates only: `ready` is written last, and the directory appears by an atomic rename.
  if (existsSync(join(template, 'ready'))) {
    cpSync(join(template, 'pglite'), dir, { recursive: true });
    return;
  }
  const building = mkdtempSync(`${template}-building-`);
  try {
    const sql = await createPgliteSqlClient(join(building, 'pglite'));
    await prepareTemplate(sql, options);
    await sql.close();
    writeFileSync(join(building, 'ready'), '');
    cpSync(join(building, 'pglite'), dir, { recursive: true });
    // Left incomplete (a temp cleaner took `ready`): replaced. Taken by another worker meanwhile: ours is dropped.
    if (existsSync(template) && !existsSync(join(template, 'ready'))) rmSync(template, { recursive: true, force: true });
    try {
      renameSync(building, template);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  } finally {
    rmSync(building, { recursive: true, force: true });
  }
}

export function redisTestPrefix(): { url: string; prefix: string; cleanup(): Promise<void> } {
  const prefix = `moat-test:${randomBytes(6).toString('hex')}:`;
  return {
    url: REDIS_URL,
    prefix,
    async cleanup() {
      const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redis.connect();
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
          cursor = next;
          if (keys.length > 0) await redis.del(...keys);
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  };
}

export type SqlBackend = [string, () => Promise<{ sql: SqlClient; drop(): Promise<void> }>];

/**
 * The SQL backends Moat ships, for contract suites: the embedded PGlite always, a throwaway Postgres
 * database unless this is the embedded pass. Empty databases: for the migration tests, and a suite
 * whose subject is not the schema takes migratedSqlBackends() instead.
 */
export function sqlBackends(): SqlBackend[] {
  return sqlBackendsOf({ migrated: false });
}

/**
 * sqlBackends() with every migration applied, each a copy of its backend's migrated template (as the
 * harness gets): creating a PGlite cluster and migrating it is seconds of CPU each time, most of what a
 * store suite spent. Migrating an empty database stays covered by test/storage/migrations.test.ts.
 */
export function migratedSqlBackends(): SqlBackend[] {
  return sqlBackendsOf({ migrated: true });
}

/** A migrated PGlite database of its own (a copy of the template), for a store a suite needs beside its backend's. */
export async function openMigratedPglite(): Promise<{ sql: SqlClient; drop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'moat-sql-'));
  await copyMigratedEmbeddedDatabase(join(dir, 'pglite'));
  const sql = await createPgliteSqlClient(join(dir, 'pglite'));
  return {
    sql,
    drop: async () => {
      await sql.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function sqlBackendsOf(options: { migrated: boolean }): SqlBackend[] {
  const backends: SqlBackend[] = [
    [
      'PGlite',
      async () => {
        if (options.migrated) return openMigratedPglite();
        const dir = mkdtempSync(join(tmpdir(), 'moat-sql-'));
        const sql = await createPgliteSqlClient(dir);
        return {
          sql,
          drop: async () => {
            await sql.close();
            rmSync(dir, { recursive: true, force: true });
          },
        };
      },
    ],
  ];
  if (withServices()) {
    backends.push([
      'Postgres',
      async () => {
        const db = options.migrated ? await createMigratedThrowawayPostgres() : await createThrowawayPostgres();
        const sql = createPgSqlClient(db.url);
        return {
          sql,
          drop: async () => {
            await sql.close();
            await db.drop();
          },
        };
      },
    ]);
  }
  return backends;
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createPgliteSqlClient, createPgSqlClient, type SqlClient } from '../../src/storage/sql/sql-client.ts';
import { copyMigratedEmbeddedDatabase, createThrowawayPostgres, describeWithServices } from '../support/databases.ts';

/** Five inserts started together in a transaction, the first of which fails: none may be written. */
async function expectNothingWrittenAfterRollback(sql: SqlClient): Promise<void> {
  await sql.query('CREATE TABLE after_rollback (id int PRIMARY KEY)');
  await sql.query('INSERT INTO after_rollback VALUES (1)');
  await expect(
    sql.transaction(async (tx) => {
      // The first fails at once; the rest wait their turn behind it, and the transaction is over
      // (rolled back, its connection back in the pool) before their turn would come.
      await Promise.all([1, 2, 3, 4, 5].map((id) => tx.query('INSERT INTO after_rollback VALUES ($1)', [id])));
    }),
  ).rejects.toMatchObject({ code: '23505' });
  // Give any query still queued the time to run, had it been allowed to.
  await new Promise((r) => setTimeout(r, 200));
  const { rows } = await sql.query<{ id: number }>('SELECT id FROM after_rollback ORDER BY id');
  expect(rows.map((r) => r.id)).toEqual([1]);
}

/*
 * A transaction holds one Postgres connection, and a connection runs one query at a time. Store code
 * may still start a transaction's writes together (Promise.all); the client queues them in the order
 * they were started instead of handing pg a second query while one runs, which pg deprecates and
 * pg 9 refuses.
 */
describeWithServices('queries started together inside a transaction', () => {
  let db: Awaited<ReturnType<typeof createThrowawayPostgres>>;
  beforeAll(async () => {
    db = await createThrowawayPostgres();
  });
  afterAll(async () => {
    await db.drop();
  });
  /** A client of its own for one test, closed after it. */
  const withClient = async (use: (sql: SqlClient) => Promise<void>): Promise<void> => {
    const sql = createPgSqlClient(db.url);
    try {
      await use(sql);
    } finally {
      await sql.close();
    }
  };

  it('run one after the other in the order they were started, never two at once on the connection', async () => {
    // Instrumentation, not a stand-in: every query still goes to the real server; this only counts
    // how many a connection was given at the same time.
    const original = pg.Client.prototype.query;
    const inFlight = new Map<unknown, number>();
    let most = 0;
    pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
      const now = (inFlight.get(this) ?? 0) + 1;
      inFlight.set(this, now);
      most = Math.max(most, now);
      const settled = () => inFlight.set(this, (inFlight.get(this) ?? 1) - 1);
      const result = (original as (...a: unknown[]) => unknown).apply(this, args);
      if (result instanceof Promise) result.then(settled, settled);
      else settled();
      return result;
    } as typeof original;
    const sql = createPgSqlClient(db.url);
    try {
      await sql.query('CREATE TABLE arrivals (seq serial PRIMARY KEY, label text NOT NULL)');
      const labels = ['first', 'second', 'third', 'fourth'];
      await sql.transaction(async (tx) => {
        // pg_sleep keeps the first insert running while the others are started.
        await Promise.all(labels.map((label, i) => tx.query(`INSERT INTO arrivals (label) SELECT $1 FROM pg_sleep($2)`, [label, i === 0 ? 0.2 : 0])));
      });
      const { rows } = await sql.query<{ label: string }>('SELECT label FROM arrivals ORDER BY seq');
      expect(rows.map((r) => r.label)).toEqual(labels);
      expect(most).toBe(1);
    } finally {
      pg.Client.prototype.query = original;
      await sql.close();
    }
  });

  it('still roll back as a whole when one of them fails', () =>
    withClient(async (sql) => {
      await sql.query('CREATE TABLE kept (id int PRIMARY KEY)');
      await expect(
        sql.transaction(async (tx) => {
          await Promise.all([tx.query('INSERT INTO kept VALUES (1)'), tx.query('INSERT INTO kept VALUES (1)'), tx.query('INSERT INTO kept VALUES (2)')]);
        }),
      ).rejects.toMatchObject({ code: '23505' });
      const { rows } = await sql.query('SELECT id FROM kept');
      expect(rows).toEqual([]);
    }));

  it('commit a query the code started without waiting for it, with the rest of the transaction', () =>
    withClient(async (sql) => {
      await sql.query('CREATE TABLE unawaited (id int PRIMARY KEY)');
      await sql.transaction(async (tx) => {
        await tx.query('INSERT INTO unawaited VALUES (1)');
        void tx.query('INSERT INTO unawaited VALUES (2)');
      });
      const { rows } = await sql.query<{ id: number }>('SELECT id FROM unawaited ORDER BY id');
      expect(rows.map((r) => r.id)).toEqual([1, 2]);
    }));

  it('fail, not report success, when the code caught a failed query and COMMIT rolled everything back', () =>
    withClient(async (sql) => {
      await sql.query('CREATE TABLE swallowed (id int PRIMARY KEY)');
      await sql.query('INSERT INTO swallowed VALUES (1)');
      await expect(
        sql.transaction(async (tx) => {
          await tx.query('INSERT INTO swallowed VALUES (2)');
          await tx.query('INSERT INTO swallowed VALUES (1)').catch(() => undefined);
        }),
      ).rejects.toThrow(/rolled it back/);
      const { rows } = await sql.query<{ id: number }>('SELECT id FROM swallowed ORDER BY id');
      expect(rows.map((r) => r.id)).toEqual([1]);
    }));

  it('run none of those still queued once the first has failed: nothing is written after the rollback', () =>
    withClient(async (sql) => {
      await expectNothingWrittenAfterRollback(sql);
    }));
});

// The embedded default's transactions are PGlite's own (src/storage/sql/sql-client.ts hands them to
// PGlite's transaction()): the same guarantee, checked there too.
describe('queries started together inside a PGlite transaction', () => {
  it('run none of those still queued once the first has failed: nothing is written after the rollback', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-pglite-tx-'));
    await copyMigratedEmbeddedDatabase(join(dir, 'pglite'));
    const sql = await createPgliteSqlClient(join(dir, 'pglite'));
    try {
      await expectNothingWrittenAfterRollback(sql);
    } finally {
      await sql.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

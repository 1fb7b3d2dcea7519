import { createServer } from 'node:net';
import { StorageUnavailableError } from '../../src/kernel/storage-unavailable.ts';
import { connectRedis } from '../../src/storage/redis/redis-client.ts';
import { createPostgresModelStore } from '../../src/storage/sql/postgres-model-store.ts';
import { createPgSqlClient } from '../../src/storage/sql/sql-client.ts';
import { createThrowawayPostgres, describeWithServices } from '../support/databases.ts';

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('a backend that is not there', () => {
  it('makes Postgres calls fail fast with StorageUnavailableError, not hang', async () => {
    const sql = createPgSqlClient(`postgres://postgres@127.0.0.1:${await closedPort()}/none`);
    const store = createPostgresModelStore(sql);
    const started = Date.now();
    await expect(store.find('Client', 'x')).rejects.toBeInstanceOf(StorageUnavailableError);
    expect(Date.now() - started).toBeLessThan(5000);
    await sql.close();
  });

  it('makes connecting to Redis fail with StorageUnavailableError within its timeout', async () => {
    const started = Date.now();
    await expect(connectRedis(`redis://127.0.0.1:${await closedPort()}`, 1000)).rejects.toBeInstanceOf(StorageUnavailableError);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describeWithServices('a Postgres connection lost in the middle of a transaction', () => {
  it('fails the transaction with StorageUnavailableError, leaves the process standing and the pool usable', async () => {
    const db = await createThrowawayPostgres();
    const victim = new URL(db.url);
    victim.searchParams.set('application_name', 'moat-victim');
    const admin = createPgSqlClient(db.url);
    const lost: string[] = [];
    const sql = createPgSqlClient(victim.toString(), { onUnavailable: (_backend, operation) => lost.push(operation) });
    try {
      let terminated!: () => void;
      const afterTermination = new Promise<void>((resolve) => {
        terminated = resolve;
      });
      let begun!: () => void;
      const idle = new Promise<void>((resolve) => {
        begun = resolve;
      });
      const inFlight = sql.transaction(async (tx) => {
        await tx.query('SELECT 1');
        begun();
        // Between two statements the connection is checked out and idle: a crash or failover now
        // makes the client emit 'error' with no query to fail, which must not reach the process.
        await afterTermination;
        await tx.query('SELECT 2');
      });
      await idle;
      const { rows } = await admin.query<{ ended: boolean }>(
        "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE application_name = 'moat-victim' AND state = 'idle in transaction'",
      );
      expect(rows).toEqual([{ ended: true }]);
      // The client hears of it asynchronously; wait until it has, then let the transaction go on.
      const until = Date.now() + 5000;
      while (!lost.includes('connection') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      terminated();
      await expect(inFlight).rejects.toBeInstanceOf(StorageUnavailableError);
      expect(lost).toContain('connection');
      expect((await sql.query<{ ok: number }>('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await sql.close();
      await admin.close();
      await db.drop();
    }
  });
});

import { createServer } from 'node:net';
import { StorageUnavailableError } from '../../src/storage/model-store.ts';
import { connectRedis } from '../../src/storage/redis/redis-model-store.ts';
import { createPostgresModelStore } from '../../src/storage/sql/postgres-model-store.ts';
import { createPgSqlClient } from '../../src/storage/sql/sql-client.ts';

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

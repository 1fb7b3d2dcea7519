import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryModelStore } from '../../src/storage/embedded/memory-model-store.ts';
import { connectRedis, createRedisModelStore } from '../../src/storage/redis/redis-model-store.ts';
import { applyMigrations } from '../../src/storage/sql/migrate.ts';
import { createPostgresModelStore } from '../../src/storage/sql/postgres-model-store.ts';
import { createPgliteSqlClient, createPgSqlClient } from '../../src/storage/sql/sql-client.ts';
import { createThrowawayPostgres, withServices, redisTestPrefix } from '../support/databases.ts';
import { describeModelStoreContract } from './model-store-contract.ts';

describeModelStoreContract('in-process', async () => {
  const store = createMemoryModelStore();
  return { store, close: () => store.close() };
});

describeModelStoreContract('PGlite (embedded Postgres)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-pglite-'));
  const sql = await createPgliteSqlClient(dir);
  await applyMigrations(sql);
  const store = createPostgresModelStore(sql);
  return {
    store,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

if (!withServices()) {
  it.skip('Postgres and Redis model stores (embedded-only run)', () => {});
} else {
  describeModelStoreContract('Postgres', async () => {
    const db = await createThrowawayPostgres();
    const sql = createPgSqlClient(db.url);
    await applyMigrations(sql);
    const store = createPostgresModelStore(sql);
    return {
      store,
      close: async () => {
        await store.close();
        await db.drop();
      },
    };
  });

  describeModelStoreContract('Redis', async () => {
    const prefix = redisTestPrefix();
    const store = createRedisModelStore(await connectRedis(prefix.url), prefix.prefix);
    return {
      store,
      close: async () => {
        await store.close();
        await prefix.cleanup();
      },
    };
  });
}

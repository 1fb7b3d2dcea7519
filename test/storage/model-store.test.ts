import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryModelStore } from '../../src/storage/embedded/memory-model-store.ts';
import { connectRedis } from '../../src/storage/redis/redis-client.ts';
import { createRedisModelStore } from '../../src/storage/redis/redis-model-store.ts';
import { createPostgresModelStore } from '../../src/storage/sql/postgres-model-store.ts';
import { createPgliteSqlClient, createPgSqlClient } from '../../src/storage/sql/sql-client.ts';
import { copyMigratedEmbeddedDatabase, createMigratedThrowawayPostgres, withServices, redisTestPrefix } from '../support/databases.ts';
import { describeModelStoreContract } from './model-store-contract.ts';

describeModelStoreContract('in-process', async () => {
  const store = createMemoryModelStore();
  return { store, close: () => store.close() };
});

describeModelStoreContract('PGlite (embedded Postgres)', async () => {
  // A migrated copy of the template (databases.ts); migrating an empty database is migrations.test.ts's.
  const dir = mkdtempSync(join(tmpdir(), 'moat-pglite-'));
  await copyMigratedEmbeddedDatabase(join(dir, 'pglite'));
  const sql = await createPgliteSqlClient(join(dir, 'pglite'));
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
    const db = await createMigratedThrowawayPostgres();
    const sql = createPgSqlClient(db.url);
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

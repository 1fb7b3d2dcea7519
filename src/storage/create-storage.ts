import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MoatConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { tracedModelStore, tracedSql } from './traced-storage.ts';
import { createMemoryModelStore } from './embedded/memory-model-store.ts';
import type { ModelStore, StorageErrorListener } from '../kernel/model-store.ts';
import type { Redis } from 'ioredis';
import { createLocalInvalidationBus, type InvalidationBus } from '../caching/invalidation.ts';
import { createPgInvalidationBus } from './sql/pg-invalidation-bus.ts';
import { connectRedis } from './redis/redis-client.ts';
import { createRedisModelStore } from './redis/redis-model-store.ts';
import { applyMigrations } from './sql/migrate.ts';
import { createPostgresModelStore } from './sql/postgres-model-store.ts';
import { createPgliteSqlClient, createPgSqlClient, type SqlClient } from './sql/sql-client.ts';

export interface Storage {
  durable: ModelStore;
  shortLived: ModelStore;
  sql: SqlClient;
  /** The Redis connection when one is configured (shared state such as rate limits lives there too). */
  redis?: Redis;
  kind: { durable: 'postgres' | 'pglite'; shortLived: 'redis' | 'memory' };
  /**
   * Announcements of changes to what instances cache (src/caching/): Postgres LISTEN/NOTIFY, or in
   * memory for the embedded database (one process, every change made here).
   */
  invalidation: InvalidationBus;
  close(): Promise<void>;
}

/** PGlite is one process's database; a second process opening it would corrupt it. */
export class EmbeddedDatabaseLockedError extends Error {
  constructor(lockFile: string, pid: number) {
    super(
      `the embedded database is in use by process ${pid} (${lockFile}); stop that Moat server, or point storage.postgresUrl at a Postgres server to run several processes`,
    );
    this.name = 'EmbeddedDatabaseLockedError';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lockEmbedded(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const lockFile = join(dir, 'moat.lock');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      return () => rmSync(lockFile, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(lockFile, 'utf8'));
      if (Number.isInteger(holder) && holder !== process.pid && processAlive(holder)) throw new EmbeddedDatabaseLockedError(lockFile, holder);
      // A stale lock left by a process that died: take it over.
      rmSync(lockFile, { force: true });
    }
  }
  throw new Error(`could not lock ${lockFile}`);
}

/**
 * Opens the configured backends: Postgres or the embedded PGlite for durable models, Redis or the
 * in-process store for short-lived ones; applies migrations when configured; purges expired rows
 * periodically. `onUnavailable` hears of every call Postgres or Redis failed for being unavailable.
 */
export async function createStorage(config: MoatConfig, logger?: Logger, onUnavailable?: StorageErrorListener): Promise<Storage> {
  const closers: (() => Promise<void> | void)[] = [];
  try {
    let sql: SqlClient;
    let durableKind: Storage['kind']['durable'];
    if (config.storage.postgresUrl !== undefined) {
      sql = createPgSqlClient(config.storage.postgresUrl, { onUnavailable });
      durableKind = 'postgres';
    } else {
      const dir = join(config.dataDir, 'pglite');
      const unlock = lockEmbedded(dir);
      closers.push(unlock);
      sql = await createPgliteSqlClient(dir);
      durableKind = 'pglite';
    }
    closers.unshift(() => sql.close());
    // Every query a child span of the request's (a no-op unless an OpenTelemetry SDK is registered).
    sql = tracedSql(sql, durableKind);
    if (config.storage.migrateOnStart) {
      const { applied } = await applyMigrations(sql);
      if (applied.length > 0) logger?.info({ event: 'migrations.applied', applied }, 'migrations applied');
    }
    const durable = createPostgresModelStore(sql);
    let invalidation: InvalidationBus;
    if (config.storage.postgresUrl === undefined) {
      invalidation = createLocalInvalidationBus();
    } else {
      invalidation = await createPgInvalidationBus(config.storage.postgresUrl, {
        onState: (live, err) =>
          live
            ? logger?.info({ event: 'cache_invalidation.listening' }, 'listening for cache invalidations: caches on')
            : logger?.warn(
                { err, event: 'cache_invalidation.lost' },
                'cache invalidation subscription lost: caches off, reading from Postgres until it is back',
              ),
      });
    }
    closers.unshift(() => invalidation.close());

    let shortLived: ModelStore;
    let shortKind: Storage['kind']['shortLived'];
    let redis: Redis | undefined;
    if (config.storage.redisUrl !== undefined) {
      redis = await connectRedis(config.storage.redisUrl, undefined, onUnavailable);
      shortLived = tracedModelStore(createRedisModelStore(redis, config.storage.redisKeyPrefix, onUnavailable), 'redis');
      closers.unshift(() => shortLived.close());
      shortKind = 'redis';
    } else {
      shortLived = createMemoryModelStore();
      shortKind = 'memory';
    }

    const purge = setInterval(() => {
      Promise.all([durable.purgeExpired(), shortLived.purgeExpired()]).then(
        ([rows, entries]) => {
          if (rows + entries > 0) logger?.debug({ event: 'storage.purged', rows, entries }, 'expired entries purged');
        },
        (err: unknown) => logger?.warn({ err, event: 'storage.purge_failed' }, 'purging expired entries failed'),
      );
    }, config.storage.purgeIntervalSeconds * 1000);
    purge.unref();
    closers.unshift(() => clearInterval(purge));

    return {
      durable,
      shortLived,
      sql,
      ...(redis === undefined ? {} : { redis }),
      kind: { durable: durableKind, shortLived: shortKind },
      invalidation,
      async close() {
        for (const close of closers.splice(0)) await close();
      },
    };
  } catch (err) {
    for (const close of closers) await close();
    throw err;
  }
}

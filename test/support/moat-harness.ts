import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { validateConfig } from '../../src/config/load.ts';
import type { MoatConfig } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createMoatServer, type MoatServer } from '../../src/server.ts';
import { copyMigratedEmbeddedDatabase, createMigratedThrowawayPostgres, embeddedOnly, redisTestPrefix } from './databases.ts';
import { freePort } from './ports.ts';

/*
 * Starts a real Moat — real TLS on a loopback port, real storage — the way main.ts does, with a
 * throwaway data directory, keys and database per harness. Backends: the embedded default, or the
 * machine's Postgres and Redis (each harness in its own database and key prefix).
 */

export type Backend = 'embedded' | 'services';

export interface Harness {
  issuer: string;
  port: number;
  dataDir: string;
  config: MoatConfig;
  moat: MoatServer;
  /** Every log line the server wrote, parsed. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** Which backend integration tests use: the services unless TEST_MOAT_EMBEDDED_ONLY=1. */
export function defaultBackend(): Backend {
  return embeddedOnly() ? 'embedded' : 'services';
}

export { freePort };

export async function startMoat(
  options: { backend?: Backend; config?: Record<string, unknown>; now?: () => Date; keysNow?: () => Date } = {},
): Promise<Harness> {
  const backend = options.backend ?? defaultBackend();
  // A sandbox Moat seeds its demo customers on start; its database comes with them (databases.ts says why).
  const template = { sandboxSeeded: (options.config?.mode ?? 'sandbox') === 'sandbox' };
  const dataDir = mkdtempSync(join(tmpdir(), 'moat-test-'));
  const cleanups: (() => Promise<void>)[] = [];
  const storage: Record<string, unknown> = {};
  if (backend === 'services') {
    const pg = await createMigratedThrowawayPostgres(template);
    const redis = redisTestPrefix();
    cleanups.push(pg.drop, redis.cleanup);
    Object.assign(storage, { postgresUrl: pg.url, redisUrl: redis.url, redisKeyPrefix: redis.prefix });
  } else if ((options.config?.storage as { postgresUrl?: string } | undefined)?.postgresUrl === undefined) {
    await copyMigratedEmbeddedDatabase(join(dataDir, 'pglite'), template);
  }
  const logs: Record<string, unknown>[] = [];
  const logFile = process.env.TEST_MOAT_LOG_DIR === undefined ? undefined : join(process.env.TEST_MOAT_LOG_DIR, `${process.pid}.jsonl`);
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (logFile !== undefined) appendFileSync(logFile, chunk);
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const cleanUp = async () => {
    for (const cleanup of cleanups) await cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  };
  // The issuer names the port, so a port taken between probe and listen (by another test run on
  // this host) means building the server again on another one.
  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    let config: MoatConfig;
    let moat: MoatServer;
    try {
      config = validateConfig(harnessConfig(port, dataDir, storage, options.config), 'test harness', dataDir);
      moat = await createMoatServer(config, createLogger(config.logging.level, sink), {
        ...(options.now === undefined ? {} : { now: options.now }),
        ...(options.keysNow === undefined ? {} : { keysNow: options.keysNow }),
      });
    } catch (err) {
      await cleanUp();
      throw err;
    }
    // A server that started but could not listen still holds pools and timers: a test whose beforeAll
    // throws never reaches the afterAll that would close it, and Jest would wait on them forever.
    try {
      await moat.listen();
    } catch (err) {
      await moat.close().catch(() => undefined);
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 3) continue;
      await cleanUp();
      throw err;
    }
    return {
      issuer: config.issuer,
      port,
      dataDir,
      config,
      moat,
      logs,
      async close() {
        await moat.close();
        await cleanUp();
      },
    };
  }
}

function harnessConfig(
  port: number,
  dataDir: string,
  storage: Record<string, unknown>,
  overrides: Record<string, unknown> | undefined,
): Record<string, unknown> {
  return {
    issuer: `https://localhost:${port}`,
    listen: { host: '127.0.0.1', port },
    dataDir,
    keys: { dir: join(dataDir, 'keys') },
    logging: { level: 'debug' },
    // Test files register and redeem far faster than a TPP would; the limits have their own test.
    rateLimits: generousRateLimits(),
    // Any free port: test files run in parallel.
    admin: { port: 0 },
    // Tests hammer error paths on purpose (fuzzing, replay races): the detector flags and logs, but
    // restricts a client only in the tests about restricting clients.
    threats: { responses: { low: 'log', medium: 'log', high: 'log' } },
    ...overrides,
    storage: { ...storage, ...(overrides?.storage as object | undefined) },
  };
}

function generousRateLimits(): Record<string, unknown> {
  const wide = { requests: 100_000, perSeconds: 60 };
  return Object.fromEntries(['par', 'token', 'registration', 'backchannel'].map((e) => [e, { perClient: wide, perAddress: wide }]));
}

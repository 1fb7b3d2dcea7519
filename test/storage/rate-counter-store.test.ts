import type { Redis } from 'ioredis';
import { createMemoryRateCounterStore } from '../../src/storage/embedded/memory-rate-counter-store.ts';
import { createRedisRateCounterStore } from '../../src/storage/redis/redis-rate-counter-store.ts';
import { connectRedis, createRedisClient } from '../../src/storage/redis/redis-client.ts';
import type { RateCounterStore } from '../../src/throttle/rate-counter.ts';
import { withServices, redisTestPrefix } from '../support/databases.ts';
import { freePort } from '../support/ports.ts';
import { REDIS_SERVER, startRedisServer, stopRedisServer } from '../support/private-redis.ts';

/*
 * The counters behind the request rate limits (src/http/rate-limits.ts): fixed windows from a key's
 * first request, every request counted (refused ones too), all of a request's counters in one step.
 * One contract, run on the in-process store and on Redis; on Redis, one command per request.
 */

interface Backend {
  store: RateCounterStore;
  key(name: string): string;
  /** Ends every window now, as their expiry would. */
  endWindows(keys: string[]): Promise<void>;
  close(): Promise<void>;
}

function describeRateCounterContract(name: string, open: () => Promise<Backend>): void {
  describe(`rate counters: ${name}`, () => {
    let backend: Backend;
    beforeAll(async () => {
      backend = await open();
    });
    afterAll(async () => {
      await backend?.close();
    });

    it('counts each request under every counter, in the order given, with the time left in each window', async () => {
      const address = { key: backend.key('address-1'), windowSeconds: 60 };
      const client = { key: backend.key('client-1'), windowSeconds: 10 };
      expect(await backend.store.hit([address, client])).toEqual([
        { count: 1, msBeforeReset: expect.any(Number) },
        { count: 1, msBeforeReset: expect.any(Number) },
      ]);
      const [a, c] = await backend.store.hit([address, client]);
      expect(a!.count).toBe(2);
      expect(c!.count).toBe(2);
      expect(a!.msBeforeReset).toBeGreaterThan(55_000);
      expect(a!.msBeforeReset).toBeLessThanOrEqual(60_000);
      expect(c!.msBeforeReset).toBeGreaterThan(5_000);
      expect(c!.msBeforeReset).toBeLessThanOrEqual(10_000);
      expect((await backend.store.hit([client]))[0]!.count).toBe(3);
    });

    it('loses no count among 50 requests at once', async () => {
      const counter = { key: backend.key('burst'), windowSeconds: 60 };
      const all = await Promise.all(Array.from({ length: 50 }, () => backend.store.hit([counter])));
      expect(all.map(([r]) => r!.count).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it('starts afresh when the window ends, not when the requests stop', async () => {
      const counter = { key: backend.key('window'), windowSeconds: 60 };
      for (let i = 0; i < 3; i += 1) await backend.store.hit([counter]);
      await backend.endWindows([counter.key]);
      expect((await backend.store.hit([counter]))[0]!.count).toBe(1);
    });
  });
}

describeRateCounterContract('in-process', async () => {
  let now = Date.now();
  const store = createMemoryRateCounterStore(() => now);
  return {
    store,
    key: (name) => name,
    async endWindows() {
      now += 60_001;
    },
    async close() {},
  };
});

if (!withServices()) {
  it.skip('Redis rate counters (embedded-only run)', () => {});
} else {
  describeRateCounterContract('Redis', async () => {
    const prefix = redisTestPrefix();
    const redis: Redis = await connectRedis(prefix.url);
    return {
      store: createRedisRateCounterStore(redis, { fallback: createMemoryRateCounterStore() }),
      key: (name) => `${prefix.prefix}rate:${name}`,
      async endWindows(keys) {
        await redis.del(...keys);
      },
      async close() {
        redis.disconnect();
        await prefix.cleanup();
      },
    };
  });

  // On a redis-server of its own: MONITOR on the shared one shows every worker's commands.
  (REDIS_SERVER === undefined && process.env.TEST_MOAT_REQUIRE_SERVICES !== '1' ? it.skip : it)(
    'sends Redis one command for all of a request’s counters',
    async () => {
      const port = await freePort();
      const server = await startRedisServer(port);
      const redis = await connectRedis(`redis://127.0.0.1:${port}`);
      const monitor = await redis.monitor();
      const sent: string[][] = [];
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        // Commands a script runs are reported with the source `lua`; the client's own with its address.
        if (source !== 'lua' && args.some((a) => a.startsWith('rate:'))) sent.push(args);
      });
      try {
        const store = createRedisRateCounterStore(redis, { fallback: createMemoryRateCounterStore() });
        // The script is loaded once (EVAL after a NOSCRIPT); what is measured is every later request.
        await store.hit([{ key: 'warm', windowSeconds: 60 }]);
        await store.hit([
          { key: 'rate:a', windowSeconds: 60 },
          { key: 'rate:b', windowSeconds: 60 },
        ]);
        await redis.ping();
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(sent).toHaveLength(1);
        expect(sent[0]![0]!.toLowerCase()).toBe('evalsha');
      } finally {
        monitor.disconnect();
        redis.disconnect();
        await stopRedisServer(server);
      }
    },
  );
}

describe('the Redis rate counters while Redis is unavailable', () => {
  it('count in per-instance memory instead, and say so', async () => {
    const redis = createRedisClient(`redis://127.0.0.1:${await freePort()}`);
    const unavailable: string[] = [];
    const store = createRedisRateCounterStore(redis, {
      fallback: createMemoryRateCounterStore(),
      onUnavailable: (backend, operation) => unavailable.push(`${backend}:${operation}`),
    });
    try {
      const counter = { key: 'moat-test:rate:outage', windowSeconds: 60 };
      expect((await store.hit([counter]))[0]!.count).toBe(1);
      expect((await store.hit([counter]))[0]!.count).toBe(2);
      expect(unavailable[0]).toBe('redis:script');
    } finally {
      redis.disconnect();
    }
  });
});

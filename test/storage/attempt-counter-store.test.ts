import type { Redis } from 'ioredis';
import {
  BUSY_RETRY_SECONDS,
  createAttemptThrottle,
  type AttemptCounter,
  type AttemptCounterStore,
  type AttemptRule,
  type Reservation,
} from '../../src/throttle/attempt-throttle.ts';
import { createMemoryAttemptCounterStore } from '../../src/storage/embedded/memory-attempt-counter-store.ts';
import { createRedisAttemptCounterStore } from '../../src/storage/redis/redis-attempt-counter-store.ts';
import { connectRedis, createRedisClient } from '../../src/storage/redis/redis-client.ts';
import { withServices, redisTestPrefix } from '../support/databases.ts';
import { freePort } from '../support/ports.ts';

/*
 * The attempt counters behind sign-in throttling (and any later one-time-code throttle): reserve a
 * slot before the secret is evaluated, atomically, so that no concurrency gets more than the limit
 * evaluated (issue 14; OWASP Authentication cheat sheet, account lockout). One contract, run on the
 * in-process store and on Redis.
 */

const consecutive: AttemptRule = { name: 'account', limit: 3, windowSeconds: 86400, lockSeconds: 600, clearedBySuccess: true };
const perWindow: AttemptRule = { name: 'address', limit: 5, windowSeconds: 900, lockSeconds: 300, clearedBySuccess: false };

interface Backend {
  store: AttemptCounterStore;
  /** Forgets the reservations still in evaluation, as their expiry would (an instance died mid-evaluation). */
  forgetReservations(counters: AttemptCounter[]): Promise<void>;
  close(): Promise<void>;
}

function reserved(r: Reservation): Extract<Reservation, { reserved: true }> {
  if (!r.reserved) throw new Error(`expected a reservation, got a refusal by ${r.locked.by}`);
  return r;
}

function describeAttemptCounterContract(name: string, open: () => Promise<Backend>): void {
  describe(`attempt counters: ${name}`, () => {
    let backend: Backend;
    let n = 0;
    /** A fresh counter per test. */
    const counter = (rule: AttemptRule): AttemptCounter => {
      n += 1;
      return { rule, key: `k${n}` };
    };
    beforeAll(async () => {
      backend = await open();
    });
    afterAll(async () => {
      await backend?.close();
    });

    it('reserves no more slots than the limit for 50 attempts at once, and refuses the rest as busy, not locked', async () => {
      const c = counter(consecutive);
      const all = await Promise.all(Array.from({ length: 50 }, () => backend.store.reserve([c])));
      expect(all.filter((r) => r.reserved)).toHaveLength(3);
      expect(all.filter((r) => !r.reserved)).toHaveLength(47);
      expect(all.find((r) => !r.reserved)).toEqual({ reserved: false, locked: { by: 'account', retryAfterSeconds: BUSY_RETRY_SECONDS } });
    });

    it('locks with the failure that reaches the limit, and refuses every attempt while locked', async () => {
      const c = counter(consecutive);
      expect(await reserved(await backend.store.reserve([c])).settle('failed')).toBeUndefined();
      expect(await reserved(await backend.store.reserve([c])).settle('failed')).toBeUndefined();
      const third = await reserved(await backend.store.reserve([c])).settle('failed');
      expect(third).toEqual({ by: 'account', retryAfterSeconds: 600 });
      const refused = await backend.store.reserve([c]);
      expect(refused.reserved).toBe(false);
      expect(!refused.reserved && refused.locked.by).toBe('account');
      expect(!refused.reserved && refused.locked.retryAfterSeconds).toBeGreaterThan(590);
    });

    it('counts 50 failures sent at once as no more than the limit: the first three settle, the lock follows', async () => {
      const c = counter(consecutive);
      const throttle = createAttemptThrottle(backend.store);
      let evaluated = 0;
      const results = await Promise.all(
        Array.from({ length: 50 }, () =>
          throttle.attempt([c], async () => {
            evaluated += 1;
            return undefined;
          }),
        ),
      );
      expect(evaluated).toBe(3);
      expect(results.filter((r) => r.outcome === 'failed')).toHaveLength(3);
      expect(results.filter((r) => r.outcome === 'refused')).toHaveLength(47);
      expect((await backend.store.reserve([c])).reserved).toBe(false);
    });

    it('clears consecutive failures on a success, but not failures counted per window', async () => {
      const account = counter(consecutive);
      const address = counter(perWindow);
      for (let i = 0; i < 2; i += 1) await reserved(await backend.store.reserve([address, account])).settle('failed');
      await reserved(await backend.store.reserve([address, account])).settle('succeeded');
      // The account starts again from zero: two more failures do not lock it.
      for (let i = 0; i < 2; i += 1) expect(await reserved(await backend.store.reserve([address, account])).settle('failed')).toBeUndefined();
      // The address kept its two earlier failures: the fifth (2 + 2 + this one) locks it.
      expect(await reserved(await backend.store.reserve([address])).settle('failed')).toEqual({ by: 'address', retryAfterSeconds: 300 });
    });

    it('does not end a lock when an attempt reserved before it succeeds', async () => {
      const c = counter(consecutive);
      const early = reserved(await backend.store.reserve([c]));
      // Its reservation forgotten (as after an instance's crash), three failures lock the counter.
      await backend.forgetReservations([c]);
      for (let i = 0; i < 3; i += 1) await reserved(await backend.store.reserve([c])).settle('failed');
      await early.settle('succeeded');
      expect((await backend.store.reserve([c])).reserved).toBe(false);
    });

    it('gives the slot back for an attempt that could not be evaluated, without counting a failure', async () => {
      const c = counter(consecutive);
      for (let i = 0; i < 5; i += 1) expect(await reserved(await backend.store.reserve([c])).settle('abandoned')).toBeUndefined();
      const throttle = createAttemptThrottle(backend.store);
      await expect(throttle.attempt([c], () => Promise.reject(new Error('directory unavailable')))).rejects.toThrow('directory unavailable');
      for (let i = 0; i < 2; i += 1) expect(await reserved(await backend.store.reserve([c])).settle('failed')).toBeUndefined();
    });

    it('reserves under every counter of an attempt or under none', async () => {
      const full = counter({ ...consecutive, limit: 1 });
      const other = counter(consecutive);
      const holding = reserved(await backend.store.reserve([full]));
      const refused = await backend.store.reserve([other, full]);
      expect(refused).toEqual({ reserved: false, locked: { by: 'account', retryAfterSeconds: BUSY_RETRY_SECONDS } });
      // `other` was not reserved by the refused attempt: all three of its slots are free.
      const three = await Promise.all([0, 1, 2].map(() => backend.store.reserve([other])));
      expect(three.every((r) => r.reserved)).toBe(true);
      await holding.settle('abandoned');
    });
  });
}

describe('the in-process store, with its clock', () => {
  let now = Date.parse('2026-12-01T10:00:00Z');
  const store = createMemoryAttemptCounterStore(() => now);
  const c: AttemptCounter = { rule: consecutive, key: 'clock' };

  it('ends a lock after lockSeconds, and counts afresh', async () => {
    for (let i = 0; i < 3; i += 1) await reserved(await store.reserve([c])).settle('failed');
    now += 599_000;
    expect((await store.reserve([c])).reserved).toBe(false);
    now += 1_000;
    for (let i = 0; i < 2; i += 1) expect(await reserved(await store.reserve([c])).settle('failed')).toBeUndefined();
  });

  it('forgets failures after the window', async () => {
    const w: AttemptCounter = { rule: perWindow, key: 'window' };
    for (let i = 0; i < 4; i += 1) await reserved(await store.reserve([w])).settle('failed');
    now += 900_000;
    for (let i = 0; i < 4; i += 1) expect(await reserved(await store.reserve([w])).settle('failed')).toBeUndefined();
  });

  it('forgets a reservation never settled after a minute', async () => {
    const r: AttemptCounter = { rule: consecutive, key: 'abandoned' };
    for (let i = 0; i < 3; i += 1) reserved(await store.reserve([r]));
    expect((await store.reserve([r])).reserved).toBe(false);
    now += 60_000;
    expect((await store.reserve([r])).reserved).toBe(true);
  });
});

describeAttemptCounterContract('in-process', async () => {
  let now = Date.now();
  return {
    store: createMemoryAttemptCounterStore(() => now),
    async forgetReservations() {
      now += 60_000;
    },
    async close() {},
  };
});

if (!withServices()) {
  it.skip('Redis attempt counters (embedded-only run)', () => {});
} else {
  describeAttemptCounterContract('Redis', async () => {
    const prefix = redisTestPrefix();
    const redis: Redis = await connectRedis(prefix.url);
    return {
      store: createRedisAttemptCounterStore(redis, prefix.prefix, { fallback: createMemoryAttemptCounterStore() }),
      async forgetReservations(counters) {
        await redis.del(...counters.map((c) => `${prefix.prefix}attempts:${c.rule.name}:${c.key}:pending`));
      },
      async close() {
        redis.disconnect();
        await prefix.cleanup();
      },
    };
  });
}

describe('the Redis store while Redis is unavailable', () => {
  it('counts in per-instance memory instead, and says so', async () => {
    const redis = createRedisClient(`redis://127.0.0.1:${await freePort()}`);
    const unavailable: string[] = [];
    const store = createRedisAttemptCounterStore(redis, 'moat-test:', {
      fallback: createMemoryAttemptCounterStore(),
      onUnavailable: (backend, operation) => unavailable.push(`${backend}:${operation}`),
    });
    try {
      const c: AttemptCounter = { rule: consecutive, key: 'outage' };
      for (let i = 0; i < 2; i += 1) expect(await reserved(await store.reserve([c])).settle('failed')).toBeUndefined();
      expect(await reserved(await store.reserve([c])).settle('failed')).toEqual({ by: 'account', retryAfterSeconds: 600 });
      expect((await store.reserve([c])).reserved).toBe(false);
      expect(unavailable[0]).toBe('redis:script');
    } finally {
      redis.disconnect();
    }
  });
});

import { ReplyError, type Redis } from 'ioredis';
import type { RateCount, RateCounterStore } from '../../throttle/rate-counter.ts';
import type { StorageErrorListener } from '../../kernel/model-store.ts';

/*
 * The rate counters in Redis, shared by every instance: each counter one key holding its count and
 * expiring with its window. Every counter of a request is counted by one Lua script, so a request
 * costs one command and one reply whatever it is counted under. Single-node Redis (or Sentinel): the
 * script touches only the keys it is given.
 */

/** KEYS: one per counter. ARGV: each counter's window in seconds. Replies count, ms left per counter. */
const HIT = `
local out = {}
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], 0, 'EX', ARGV[i], 'NX')
  local count = redis.call('INCR', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[i])
    ttl = 1000 * tonumber(ARGV[i])
  end
  out[2 * i - 1] = count
  out[2 * i] = ttl
end
return out`;

type ScriptedRedis = Redis & { moatRateHit(...args: (string | number)[]): Promise<number[]> };

/**
 * The store on a connected client. While Redis is unavailable, `fallback` (per-instance memory)
 * counts instead: the limits weaken to one instance's count rather than to none. A script's own
 * error is a bug and is thrown.
 */
export function createRedisRateCounterStore(client: Redis, options: { fallback: RateCounterStore; onUnavailable?: StorageErrorListener }): RateCounterStore {
  const redis = client as ScriptedRedis;
  if (typeof redis.moatRateHit !== 'function') redis.defineCommand('moatRateHit', { lua: HIT });
  return {
    async hit(counters) {
      let reply: number[];
      try {
        reply = await redis.moatRateHit(counters.length, ...counters.map((c) => c.key), ...counters.map((c) => c.windowSeconds));
      } catch (err) {
        if (err instanceof ReplyError) throw err;
        options.onUnavailable?.('redis', 'script');
        return options.fallback.hit(counters);
      }
      return counters.map((_, i): RateCount => ({ count: Number(reply[2 * i]), msBeforeReset: Number(reply[2 * i + 1]) }));
    },
  };
}

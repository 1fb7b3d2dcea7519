import { ReplyError, type Redis } from 'ioredis';
import {
  BUSY_RETRY_SECONDS,
  RESERVATION_SECONDS,
  type AttemptCounter,
  type AttemptCounterStore,
  type AttemptOutcome,
  type AttemptsLocked,
  type Reservation,
} from '../../throttle/attempt-throttle.ts';
import type { StorageErrorListener } from '../../kernel/model-store.ts';

/*
 * The attempt counters in Redis, shared by every instance. Each counter is three keys: its failures
 * (expiring with the window), its attempts in evaluation (expiring RESERVATION_SECONDS after the
 * last reservation, so an instance that died mid-evaluation does not hold a slot for the window)
 * and its lock. Reserving and settling are each one Lua script over every counter of the attempt,
 * so check and count are one step however many instances race. Single-node Redis (or Sentinel): the
 * scripts touch keys they are given, all of one attempt.
 */

/** KEYS: failures, pending, lock per counter. ARGV: reservation ms, then each counter's limit. */
const RESERVE = `
local n = #KEYS / 3
for i = 1, n do
  local locked = redis.call('PTTL', KEYS[3 * i])
  if locked > 0 then return {i, locked} end
  local counted = tonumber(redis.call('GET', KEYS[3 * i - 2]) or '0') + tonumber(redis.call('GET', KEYS[3 * i - 1]) or '0')
  if counted >= tonumber(ARGV[1 + i]) then return {i, -1} end
end
for i = 1, n do
  redis.call('INCR', KEYS[3 * i - 1])
  redis.call('PEXPIRE', KEYS[3 * i - 1], ARGV[1])
end
return {0, 0}`;

/** KEYS as RESERVE. ARGV: outcome, then per counter limit, window ms, lock ms, cleared by success (1/0). */
const SETTLE = `
local n, outcome = #KEYS / 3, ARGV[1]
local lockedBy, lockedMs = 0, 0
for i = 1, n do
  local failures, pending, lock = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local limit, window, lockMs, clears = tonumber(ARGV[4 * i - 2]), ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1]
  if redis.call('DECR', pending) <= 0 then redis.call('DEL', pending) end
  local remaining = redis.call('PTTL', lock)
  if outcome == 'failed' then
    if remaining <= 0 then
      local count = redis.call('INCR', failures)
      if count == 1 then redis.call('PEXPIRE', failures, window) end
      if count >= limit then
        redis.call('DEL', failures)
        redis.call('SET', lock, '1', 'PX', lockMs)
        remaining = tonumber(lockMs)
      end
    end
    if remaining > 0 and lockedBy == 0 then lockedBy, lockedMs = i, remaining end
  elseif outcome == 'succeeded' and clears == '1' and remaining <= 0 then
    redis.call('DEL', failures)
  end
end
return {lockedBy, lockedMs}`;

type ScriptedRedis = Redis & {
  moatAttemptReserve(...args: (string | number)[]): Promise<[number, number]>;
  moatAttemptSettle(...args: (string | number)[]): Promise<[number, number]>;
};

/**
 * The store on a connected client. While Redis is unavailable, `fallback` (per-instance memory)
 * counts instead: sign-in throttling weakens to one instance's count rather than to none. A
 * reservation is settled in the store that made it; a script's own error is a bug and is thrown.
 */
export function createRedisAttemptCounterStore(
  client: Redis,
  keyPrefix: string,
  options: { fallback: AttemptCounterStore; onUnavailable?: StorageErrorListener },
): AttemptCounterStore {
  const redis = client as ScriptedRedis;
  if (typeof redis.moatAttemptReserve !== 'function') {
    redis.defineCommand('moatAttemptReserve', { lua: RESERVE });
    redis.defineCommand('moatAttemptSettle', { lua: SETTLE });
  }
  const keysOf = (counters: readonly AttemptCounter[]) =>
    counters.flatMap((c) => {
      const base = `${keyPrefix}attempts:${c.rule.name}:${c.key}`;
      return [`${base}:failures`, `${base}:pending`, `${base}:lock`];
    });
  const lockedAt = (counters: readonly AttemptCounter[], index: number, ms: number): AttemptsLocked => ({
    by: counters[index - 1]!.rule.name,
    retryAfterSeconds: ms < 0 ? BUSY_RETRY_SECONDS : Math.ceil(ms / 1000),
  });
  const unavailable = (err: unknown): boolean => {
    if (err instanceof ReplyError) return false;
    options.onUnavailable?.('redis', 'script');
    return true;
  };

  const settleIn = async (counters: readonly AttemptCounter[], keys: string[], outcome: AttemptOutcome): Promise<AttemptsLocked | undefined> => {
    const rules = counters.flatMap((c) => [c.rule.limit, c.rule.windowSeconds * 1000, c.rule.lockSeconds * 1000, c.rule.clearedBySuccess ? 1 : 0]);
    try {
      const [by, remaining] = await redis.moatAttemptSettle(keys.length, ...keys, outcome, ...rules);
      return by === 0 ? undefined : lockedAt(counters, by, remaining);
    } catch (err) {
      if (!unavailable(err)) throw err;
      // Redis went away while the secret was evaluated: the reservation there expires
      // (RESERVATION_SECONDS); a failure is still counted, here.
      if (outcome !== 'failed') return undefined;
      const again = await options.fallback.reserve(counters);
      return again.reserved ? again.settle('failed') : again.locked;
    }
  };

  return {
    async reserve(counters): Promise<Reservation> {
      const keys = keysOf(counters);
      let index: number;
      let ms: number;
      try {
        [index, ms] = await redis.moatAttemptReserve(keys.length, ...keys, RESERVATION_SECONDS * 1000, ...counters.map((c) => c.rule.limit));
      } catch (err) {
        if (!unavailable(err)) throw err;
        return options.fallback.reserve(counters);
      }
      if (index !== 0) return { reserved: false, locked: lockedAt(counters, index, ms) };
      let settled = false;
      return {
        reserved: true,
        settle(outcome) {
          if (settled) return Promise.reject(new Error('an attempt is settled once'));
          settled = true;
          return settleIn(counters, keys, outcome);
        },
      };
    },
  };
}

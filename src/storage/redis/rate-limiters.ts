import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import type { RateLimiters } from '../../http/rate-limits.ts';

/** Counters in Redis, shared by every instance, with per-instance memory as the fallback during a Redis outage. */
export function createRedisRateLimiters(redis: Redis, keyPrefix: string): RateLimiters {
  return (name, limit) => {
    const options = { points: limit.requests, duration: limit.perSeconds, keyPrefix: `${keyPrefix}rate:${name}` };
    return new RateLimiterRedis({ ...options, storeClient: redis, insuranceLimiter: new RateLimiterMemory(options) });
  };
}

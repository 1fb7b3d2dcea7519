import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { RateLimiters } from '../../http/rate-limits.ts';

/** Counters in this process's memory (no Redis configured). */
export function createMemoryRateLimiters(keyPrefix: string): RateLimiters {
  return (name, limit) => new RateLimiterMemory({ points: limit.requests, duration: limit.perSeconds, keyPrefix: `${keyPrefix}rate:${name}` });
}

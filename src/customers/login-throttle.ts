import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract, type RateLimiterRes } from 'rate-limiter-flexible';

/*
 * Brute-force protection for customer sign-in (OWASP Authentication cheat sheet): consecutive
 * failures lock one username for a while, and many failures from one address lock that address,
 * which stops credential stuffing across usernames. Counters live in Redis when Moat has one, so
 * every instance sees the same count; a Redis outage falls back to per-instance memory rather
 * than to no protection.
 */

export interface LoginThrottlePolicy {
  /** Consecutive failures before a username is locked, and for how long (seconds). */
  perAccount: { failures: number; lockSeconds: number };
  /** Failures from one address within the window before it is locked. */
  perAddress: { failures: number; windowSeconds: number; lockSeconds: number };
}

export type ThrottleVerdict = { locked: false } | { locked: true; by: 'account' | 'address'; retryAfterSeconds: number };

export interface LoginThrottle {
  /** Whether a sign-in may be attempted now. */
  check(username: string, address: string): Promise<ThrottleVerdict>;
  /** Counts a failed sign-in; returns the verdict after it. */
  failed(username: string, address: string): Promise<ThrottleVerdict>;
  /** A successful sign-in clears the username's consecutive failures. */
  succeeded(username: string): Promise<void>;
}

/** Usernames are personal data: counters are keyed by a hash. */
const accountKey = (username: string) => createHash('sha256').update(username.trim().toLowerCase()).digest('base64url');

export function createLoginThrottle(policy: LoginThrottlePolicy, options: { redis?: Redis; keyPrefix: string }): LoginThrottle {
  const make = (name: string, points: number, duration: number): RateLimiterAbstract => {
    const base = { points, duration, keyPrefix: `${options.keyPrefix}login:${name}` };
    if (options.redis === undefined) return new RateLimiterMemory(base);
    return new RateLimiterRedis({ ...base, storeClient: options.redis, insuranceLimiter: new RateLimiterMemory(base) });
  };
  // "Consecutive" within a day: a success clears the count. (Longer windows overflow the
  // in-memory limiter's timers, which are capped at 2^31 ms.)
  const byAccount = make('account', policy.perAccount.failures, 86400);
  const byAddress = make('address', policy.perAddress.failures, policy.perAddress.windowSeconds);

  const lockedBy = (res: RateLimiterRes | null, points: number) => res !== null && res.consumedPoints >= points && res.msBeforeNext > 0;
  const verdict = async (username: string, address: string): Promise<ThrottleVerdict> => {
    const [account, from] = await Promise.all([byAccount.get(accountKey(username)), byAddress.get(address)]);
    if (lockedBy(from, policy.perAddress.failures)) return { locked: true, by: 'address', retryAfterSeconds: Math.ceil(from!.msBeforeNext / 1000) };
    if (lockedBy(account, policy.perAccount.failures)) return { locked: true, by: 'account', retryAfterSeconds: Math.ceil(account!.msBeforeNext / 1000) };
    return { locked: false };
  };
  // The failure that reaches the limit starts the lock; when the lock ends the count starts afresh.
  const count = async (limiter: RateLimiterAbstract, key: string, limit: number, lockSeconds: number) => {
    const res = await limiter.consume(key).catch((rejected: unknown) => {
      if (rejected instanceof Error) throw rejected;
      return rejected as RateLimiterRes;
    });
    if (res.consumedPoints >= limit) await limiter.block(key, lockSeconds);
  };

  return {
    check: verdict,
    async failed(username, address) {
      await Promise.all([
        count(byAccount, accountKey(username), policy.perAccount.failures, policy.perAccount.lockSeconds),
        count(byAddress, address, policy.perAddress.failures, policy.perAddress.lockSeconds),
      ]);
      return verdict(username, address);
    },
    async succeeded(username) {
      await byAccount.delete(accountKey(username));
    },
  };
}

/** Plain words for a locked sign-in, without saying whether the username exists. */
export function lockedMessage(verdict: Extract<ThrottleVerdict, { locked: true }>): string {
  const minutes = Math.max(1, Math.ceil(verdict.retryAfterSeconds / 60));
  const wait = `Try again in ${minutes} minute${minutes === 1 ? '' : 's'}`;
  return verdict.by === 'account'
    ? `Too many incorrect attempts for this username. For your security, sign-in is paused. ${wait}, or contact the bank if this was not you.`
    : `Too many sign-in attempts from your network. ${wait}.`;
}

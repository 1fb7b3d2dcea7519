import { createHash } from 'node:crypto';
import { addressBucket } from '../tls/trusted-proxies.ts';
import { createAttemptThrottle, type AttemptCounterStore, type AttemptResult, type AttemptRule, type AttemptsLocked } from '../throttle/attempt-throttle.ts';

/*
 * Brute-force protection for customer sign-in (OWASP Authentication cheat sheet): consecutive
 * failures lock one username for a while, and many failures from one address (an IPv6 client's
 * whole /64: addressBucket) lock that address, which stops credential stuffing across usernames. Built on the attempt throttle, so a password is
 * evaluated only after a slot was reserved under both counters: however many sign-ins arrive at
 * once, at most `perAccount.failures` passwords of one username are evaluated before it locks.
 * Counters live in Redis when Moat has one, so every instance sees the same count; a Redis outage
 * falls back to per-instance memory rather than to no protection (see server.ts).
 */

export interface LoginThrottlePolicy {
  /** Consecutive failures before a username is locked, and for how long (seconds). */
  perAccount: { failures: number; lockSeconds: number };
  /** Failures from one address within the window before it is locked. */
  perAddress: { failures: number; windowSeconds: number; lockSeconds: number };
}

export interface LoginThrottle {
  /**
   * Runs `authenticate` (undefined for wrong credentials) if neither the username nor the address is
   * locked or has every slot taken by sign-ins still being checked, and counts the outcome.
   */
  attempt<T>(username: string, address: string, authenticate: () => Promise<T | undefined>): Promise<AttemptResult<T>>;
}

/** Usernames are personal data, addresses nearly so: counters are keyed by a hash. */
const hashed = (value: string) => createHash('sha256').update(value).digest('base64url');

export function createLoginThrottle(policy: LoginThrottlePolicy, store: AttemptCounterStore): LoginThrottle {
  // "Consecutive" within a day: a success clears the count.
  const account: AttemptRule = {
    name: 'account',
    limit: policy.perAccount.failures,
    windowSeconds: 86400,
    lockSeconds: policy.perAccount.lockSeconds,
    clearedBySuccess: true,
  };
  const address: AttemptRule = {
    name: 'address',
    limit: policy.perAddress.failures,
    windowSeconds: policy.perAddress.windowSeconds,
    lockSeconds: policy.perAddress.lockSeconds,
    clearedBySuccess: false,
  };
  const throttle = createAttemptThrottle(store);
  return {
    attempt: (username, from, authenticate) =>
      throttle.attempt(
        [
          // The address first: when both are locked, the page names the network.
          { rule: address, key: hashed(addressBucket(from)) },
          { rule: account, key: hashed(username.trim().toLowerCase()) },
        ],
        authenticate,
      ),
  };
}

/** Plain words for a locked sign-in, without saying whether the username exists. */
export function lockedMessage(locked: AttemptsLocked): string {
  const minutes = Math.max(1, Math.ceil(locked.retryAfterSeconds / 60));
  const wait = `Try again in ${minutes} minute${minutes === 1 ? '' : 's'}`;
  return locked.by === 'account'
    ? `Too many incorrect attempts for this username. For your security, sign-in is paused. ${wait}, or contact the bank if this was not you.`
    : `Too many sign-in attempts from your network. ${wait}.`;
}

/*
 * Attempts at a secret — a customer's password, later a one-time code — counted so that no amount
 * of concurrency gets more of them evaluated than the policy allows (OWASP Authentication cheat
 * sheet, "Account lockout"). Checking a counter and then counting a failure once the secret has
 * been evaluated is a race: fifty guesses sent at once all pass the check before the first failure
 * is counted. So an attempt first *reserves* a slot under each of its counters, in one atomic step
 * of the store (a Lua script in Redis, a synchronous function in process), and is refused before
 * the secret is looked at when a counter is locked or when its failures plus the attempts still
 * being evaluated have reached the limit. Only then is the secret evaluated; the outcome settles
 * the reservation:
 * - a failure stays counted, and the failure that reaches the limit locks the counter for
 *   `lockSeconds` (when the lock ends the count starts afresh);
 * - a success gives its slot back and, for a rule of consecutive failures, clears the failures —
 *   but never a lock: while locked nothing is evaluated, so a right guess cannot end the lock;
 * - an evaluation that could not be made (the directory was unavailable) gives its slot back.
 * At any moment failures + attempts in evaluation ≤ limit, so at most `limit` secrets are evaluated
 * per counter between two successes, whatever arrives at once and on however many instances.
 */

/** How attempts under one kind of counter are limited. */
export interface AttemptRule {
  /** Names the counter in storage keys and in the verdict: `account`, `address`, … */
  name: string;
  /** Failures allowed (attempts still being evaluated count against it); the one reaching it locks. */
  limit: number;
  /** How long a failure counts, from the first failure of the window (seconds). */
  windowSeconds: number;
  /** How long a counter stays locked once its limit is reached (seconds). */
  lockSeconds: number;
  /** A success clears the failures counted so far (consecutive failures), or not (failures per window). */
  clearedBySuccess: boolean;
}

/** One counter an attempt is counted under: a rule and whom it counts (a hashed username, an address). */
export interface AttemptCounter {
  rule: AttemptRule;
  key: string;
}

/** A locked (or, for a moment, full) counter: which rule, and when to try again. */
export interface AttemptsLocked {
  by: string;
  retryAfterSeconds: number;
}

export type AttemptOutcome = 'failed' | 'succeeded' | 'abandoned';

export type Reservation =
  | { reserved: true; settle(outcome: AttemptOutcome): Promise<AttemptsLocked | undefined> }
  | { reserved: false; locked: AttemptsLocked };

/**
 * Where the counters live; implemented in src/storage (Redis, in process). `reserve` is one atomic
 * step over every counter of the attempt: it reserves under all of them or under none. `settle`
 * answers, for a failure, the lock that is now in force (if any).
 */
export interface AttemptCounterStore {
  reserve(counters: readonly AttemptCounter[]): Promise<Reservation>;
}

/**
 * How long an attempt may stay in evaluation before its reservation is forgotten (seconds): far
 * longer than a password hash takes, so that a reservation an instance never settled (it crashed)
 * does not hold a slot for the rest of the window.
 */
export const RESERVATION_SECONDS = 60;

/**
 * Retry-After when every slot is taken by attempts still in evaluation and none is locked yet: they
 * settle within moments, into a lock or a success.
 */
export const BUSY_RETRY_SECONDS = 1;

export type AttemptResult<T> =
  | { outcome: 'refused'; locked: AttemptsLocked }
  | { outcome: 'failed'; locked?: AttemptsLocked }
  | { outcome: 'succeeded'; value: T };

export interface AttemptThrottle {
  /**
   * Evaluates the secret (`evaluate` resolves to undefined for a wrong one) only if a slot could be
   * reserved under every counter, and counts the outcome.
   */
  attempt<T>(counters: readonly AttemptCounter[], evaluate: () => Promise<T | undefined>): Promise<AttemptResult<T>>;
}

export function createAttemptThrottle(store: AttemptCounterStore): AttemptThrottle {
  return {
    async attempt(counters, evaluate) {
      const reservation = await store.reserve(counters);
      if (!reservation.reserved) return { outcome: 'refused', locked: reservation.locked };
      let value;
      try {
        value = await evaluate();
      } catch (err) {
        await reservation.settle('abandoned').catch(() => undefined);
        throw err;
      }
      if (value === undefined) {
        const locked = await reservation.settle('failed');
        return locked === undefined ? { outcome: 'failed' } : { outcome: 'failed', locked };
      }
      await reservation.settle('succeeded');
      return { outcome: 'succeeded', value };
    },
  };
}

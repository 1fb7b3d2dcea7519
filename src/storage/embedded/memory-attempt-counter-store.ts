import {
  BUSY_RETRY_SECONDS,
  RESERVATION_SECONDS,
  type AttemptCounter,
  type AttemptCounterStore,
  type AttemptsLocked,
} from '../../throttle/attempt-throttle.ts';

/*
 * The attempt counters of the embedded default (and of an instance whose Redis is away): a Map in
 * this process. `reserve` checks and reserves every counter with nothing awaited in between, which
 * is what makes it atomic in single-threaded JavaScript; `settle` likewise. One process only.
 */

interface CounterState {
  failures: number;
  /** Epoch ms at which the window's failures are forgotten. */
  failuresUntil: number;
  /** Attempts reserved and not yet settled. */
  pending: number;
  pendingUntil: number;
  lockedUntil: number;
}

/** Expired counters are dropped at most this often (on the next reservation). */
const SWEEP_MS = 60_000;

export function createMemoryAttemptCounterStore(now: () => number = Date.now): AttemptCounterStore {
  const counters = new Map<string, CounterState>();
  let lastSweep = now();
  const id = (c: AttemptCounter) => `${c.rule.name}:${c.key}`;

  /** The counter as it stands now, expired parts reset. */
  const current = (c: AttemptCounter): CounterState => {
    const t = now();
    const state = counters.get(id(c)) ?? { failures: 0, failuresUntil: 0, pending: 0, pendingUntil: 0, lockedUntil: 0 };
    if (state.failuresUntil <= t) state.failures = 0;
    if (state.pendingUntil <= t) state.pending = 0;
    return state;
  };

  const sweep = () => {
    const t = now();
    if (t - lastSweep < SWEEP_MS) return;
    lastSweep = t;
    for (const [key, s] of counters) if (s.failuresUntil <= t && s.pendingUntil <= t && s.lockedUntil <= t) counters.delete(key);
  };

  const settle = (reserved: readonly AttemptCounter[], outcome: 'failed' | 'succeeded' | 'abandoned'): AttemptsLocked | undefined => {
    const t = now();
    let locked: AttemptsLocked | undefined;
    for (const c of reserved) {
      const state = current(c);
      state.pending = Math.max(0, state.pending - 1);
      const isLocked = state.lockedUntil > t;
      if (outcome === 'failed') {
        if (!isLocked) {
          if (state.failures === 0) state.failuresUntil = t + c.rule.windowSeconds * 1000;
          state.failures += 1;
          if (state.failures >= c.rule.limit) {
            state.failures = 0;
            state.lockedUntil = t + c.rule.lockSeconds * 1000;
          }
        }
        if (state.lockedUntil > t) locked ??= { by: c.rule.name, retryAfterSeconds: Math.ceil((state.lockedUntil - t) / 1000) };
      } else if (outcome === 'succeeded' && c.rule.clearedBySuccess && !isLocked) {
        state.failures = 0;
      }
      counters.set(id(c), state);
    }
    return locked;
  };

  return {
    async reserve(reserved) {
      sweep();
      const t = now();
      for (const c of reserved) {
        const state = current(c);
        if (state.lockedUntil > t) return { reserved: false, locked: { by: c.rule.name, retryAfterSeconds: Math.ceil((state.lockedUntil - t) / 1000) } };
        if (state.failures + state.pending >= c.rule.limit) return { reserved: false, locked: { by: c.rule.name, retryAfterSeconds: BUSY_RETRY_SECONDS } };
      }
      for (const c of reserved) {
        const state = current(c);
        state.pending += 1;
        state.pendingUntil = t + RESERVATION_SECONDS * 1000;
        counters.set(id(c), state);
      }
      let settled = false;
      return {
        reserved: true,
        async settle(outcome) {
          if (settled) throw new Error('an attempt is settled once');
          settled = true;
          return settle(reserved, outcome);
        },
      };
    },
  };
}

import type { RateCount, RateCounterStore } from '../../throttle/rate-counter.ts';

/*
 * The rate counters of the embedded default (and of an instance whose Redis is away): a Map in this
 * process, one window per key. Ended windows are dropped at most once a SWEEP_MS, on a later hit.
 */

const SWEEP_MS = 60_000;

export function createMemoryRateCounterStore(now: () => number = Date.now): RateCounterStore {
  const windows = new Map<string, { count: number; until: number }>();
  let lastSweep = now();
  return {
    async hit(counters) {
      const t = now();
      if (t - lastSweep >= SWEEP_MS) {
        lastSweep = t;
        for (const [key, w] of windows) if (w.until <= t) windows.delete(key);
      }
      return counters.map((c): RateCount => {
        let w = windows.get(c.key);
        if (w === undefined || w.until <= t) {
          w = { count: 0, until: t + c.windowSeconds * 1000 };
          windows.set(c.key, w);
        }
        w.count += 1;
        return { count: w.count, msBeforeReset: w.until - t };
      });
    },
  };
}

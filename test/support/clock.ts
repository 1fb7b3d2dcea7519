import { jest } from '@jest/globals';

/*
 * Moving the clock instead of sleeping until a lifetime runs out (STYLE: freeze or inject the clock).
 * A harness's Moat runs in the test's own process, so moving this file's Date moves the clock of
 * everything that decides an expiry there: oidc-provider (epochTime), jose, Moat's own services, the
 * in-process stores. Only Date is faked: timers, sockets, TLS and the child processes keep real time,
 * and so do Postgres's now() and Redis's key lifetimes — a test moved this way asserts a check made in
 * the process (oidc-provider's isExpired, Moat's comparisons), never a store's own expiry.
 */

const REAL_TIME_APIS = [
  'hrtime',
  'nextTick',
  'performance',
  'queueMicrotask',
  'requestAnimationFrame',
  'cancelAnimationFrame',
  'requestIdleCallback',
  'cancelIdleCallback',
  'setImmediate',
  'clearImmediate',
  'setInterval',
  'clearInterval',
  'setTimeout',
  'clearTimeout',
] as const;

/**
 * Runs `step` with the clock `ms` ahead of real time; the clock keeps moving as time passes
 * (a loop that waits on Date.now() still ends) and is real again afterwards.
 */
export async function withClockAhead<T>(ms: number, step: () => Promise<T>): Promise<T> {
  jest.useFakeTimers({ doNotFake: [...REAL_TIME_APIS], advanceTimers: true, now: Date.now() + ms });
  try {
    return await step();
  } finally {
    jest.useRealTimers();
  }
}

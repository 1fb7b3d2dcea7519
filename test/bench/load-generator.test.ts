import { runFixedRate } from '../../bench/load/load-generator.ts';

/*
 * The bench's fixed-rate load (the cluster scenario's workers 2 vs 1 at the same rate): starts follow
 * the clock, a late tick catches up instead of lowering the rate, and a start that would exceed the
 * bound of operations in flight is skipped and counted, never queued.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('starts the scheduled number of operations, catching up after a blocked event loop', async () => {
  let started = 0;
  const run = runFixedRate({
    perSecond: 200,
    durationMs: 600,
    maxInFlight: 50,
    operation: async () => {
      started += 1;
      await sleep(5);
    },
  });
  // 150 ms in which no timer fires: the ~30 starts due then are made up on the next tick.
  await sleep(100);
  const blockedUntil = Date.now() + 150;
  while (Date.now() < blockedUntil) {
    /* busy */
  }
  const result = await run;
  // Every start due in 600 ms at 200/s: 120, the ~30 due during the block made up afterwards.
  expect(result.ops).toBe(started);
  expect(result.ops).toBe(120);
  expect({ errors: result.errors, skipped: result.skipped }).toEqual({ errors: 0, skipped: 0 });
  expect(result.histogram.count).toBe(result.ops);
});

it('skips and counts the starts that would exceed the bound in flight, and counts failures apart', async () => {
  let calls = 0;
  const result = await runFixedRate({
    perSecond: 100,
    durationMs: 500,
    maxInFlight: 2,
    operation: async () => {
      calls += 1;
      const call = calls;
      await sleep(100);
      if (call % 2 === 0) throw new Error('refused');
    },
  });
  // Two in flight for 100 ms each: about 2 × 5 rounds started of the 50 due; the rest skipped.
  expect(result.ops + result.errors).toBe(calls);
  expect(calls).toBeLessThanOrEqual(12);
  expect(calls + result.skipped).toBe(50);
  expect(result.errors).toBe(Math.floor(calls / 2));
  expect(result.firstError).toBe('refused');
});

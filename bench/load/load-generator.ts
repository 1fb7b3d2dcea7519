import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';

/*
 * Load generators. Closed loop: `concurrency` workers each run one operation after another until the
 * time is up (or the supply of work runs out), so there are always exactly that many requests (or
 * flows) in flight. Fixed rate: operations started on a schedule, whatever the server's pace, up to a
 * bound of operations in flight. Latency is recorded per operation in an HDR histogram
 * (node:perf_hooks).
 */

/** Thrown by an operation when there is no more work (the minted codes are all used). */
export class SupplyExhausted extends Error {
  constructor() {
    super('no more work');
    this.name = 'SupplyExhausted';
  }
}

export interface LoadResult {
  ops: number;
  errors: number;
  /** The first failure, for the report (later ones are usually the same). */
  firstError?: string;
  elapsedMs: number;
  /** Operation latency in nanoseconds. */
  histogram: RecordableHistogram;
}

export interface LoadOptions {
  concurrency: number;
  durationMs: number;
  operation: () => Promise<void>;
}

export async function runClosedLoop(options: LoadOptions): Promise<LoadResult> {
  const histogram = createHistogram();
  const started = performance.now();
  const deadline = started + options.durationMs;
  let ops = 0;
  let errors = 0;
  let firstError: string | undefined;
  let exhausted = false;

  const worker = async () => {
    while (!exhausted && performance.now() < deadline) {
      const begun = process.hrtime.bigint();
      try {
        await options.operation();
        histogram.record(process.hrtime.bigint() - begun);
        ops += 1;
      } catch (err) {
        if (err instanceof SupplyExhausted) {
          exhausted = true;
          return;
        }
        errors += 1;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return { ops, errors, ...(firstError === undefined ? {} : { firstError }), elapsedMs: performance.now() - started, histogram };
}

export interface FixedRateOptions {
  perSecond: number;
  durationMs: number;
  /** Operations in flight at most; a start that would exceed it is skipped and counted. */
  maxInFlight: number;
  operation: () => Promise<void>;
}

/**
 * A fixed-rate result: how many scheduled starts were skipped because `maxInFlight` were in flight.
 * ops + errors + skipped is exactly the starts due in the window, floor(durationMs / 1000 × perSecond).
 */
export interface FixedRateResult extends LoadResult {
  skipped: number;
}

/**
 * Starts operations at `perSecond`, evenly spread: each tick (timed for the next start) starts all
 * that are due by the clock, so a late tick catches up instead of lowering the rate. Below the server's capacity
 * the server then works at a rate both sides of a comparison share (the cluster scenario's CPU per
 * request, with one worker and with two, on the same load), not at what each could sustain.
 */
export async function runFixedRate(options: FixedRateOptions): Promise<FixedRateResult> {
  const histogram = createHistogram();
  const started = performance.now();
  let due = 0;
  let ops = 0;
  let errors = 0;
  let skipped = 0;
  let inFlight = 0;
  let firstError: string | undefined;
  const running = new Set<Promise<void>>();
  const start = () => {
    const begun = process.hrtime.bigint();
    inFlight += 1;
    const op = options.operation().then(
      () => {
        histogram.record(process.hrtime.bigint() - begun);
        ops += 1;
      },
      (err: unknown) => {
        errors += 1;
        firstError ??= err instanceof Error ? err.message : String(err);
      },
    );
    const tracked = op.finally(() => {
      inFlight -= 1;
      running.delete(tracked);
    });
    running.add(tracked);
  };
  // Every start due in the window is made or skipped, however late the last tick runs.
  const scheduled = Math.floor((options.durationMs / 1000) * options.perSecond);
  const startDue = (elapsedMs: number) => {
    const shouldHaveStarted = Math.min(scheduled, Math.floor((elapsedMs / 1000) * options.perSecond));
    for (; due < shouldHaveStarted; due += 1) {
      if (inFlight >= options.maxInFlight) skipped += 1;
      else start();
    }
  };
  for (let elapsed = 0; elapsed < options.durationMs; elapsed = performance.now() - started) {
    startDue(elapsed);
    // Asleep until the next start is due (at least a millisecond: timers do not go finer).
    const nextDueMs = ((due + 1) / options.perSecond) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(nextDueMs, options.durationMs) - (performance.now() - started))));
  }
  startDue(options.durationMs);
  await Promise.all(running);
  return { ops, errors, skipped, ...(firstError === undefined ? {} : { firstError }), elapsedMs: performance.now() - started, histogram };
}

/** Hands out items once each, then throws SupplyExhausted. */
export function supplyOf<T>(items: readonly T[]): () => T {
  let next = 0;
  return () => {
    if (next >= items.length) throw new SupplyExhausted();
    const item = items[next]!;
    next += 1;
    return item;
  };
}

import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';

/*
 * A closed-loop load generator: `concurrency` workers each run one operation after another until the
 * time is up (or the supply of work runs out), so there are always exactly that many requests (or
 * flows) in flight. Latency is recorded per operation in an HDR histogram (node:perf_hooks).
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

import type { BenchFixtures } from '../fixtures.ts';
import { runClosedLoop, type LoadResult } from '../load/load-generator.ts';
import type { Measurement } from '../measure.ts';
import type { BenchOptions } from '../options.ts';
import type { ServerHandle } from '../servers/server-handle.ts';
import type { Target } from '../targets.ts';

/*
 * What a scenario gets and what it returns. A scenario measures one kind of load on each server it
 * compares, one after the other in the same run, and names the ratios that matter.
 */

export interface BenchContext {
  options: BenchOptions;
  fixtures: BenchFixtures;
  moat: Target;
  baseline: Target;
  /** Secondary Moat rows (--variants): sandbox mode's call journal, the embedded default. */
  variants: Target[];
  /** The bare https servers of the raw floors, started on first use. */
  floors(): Promise<ServerHandle>;
  /** Where CPU profiles of extra server processes go (the soak's), when profiling. */
  cpuProfileDir?: string;
}

export interface ScenarioRow {
  /** `moat`, `baseline`, or a floor's name. */
  server: string;
  measurement: Measurement;
}

export interface Ratio {
  /** e.g. `moat / baseline`. */
  label: string;
  /**
   * `throughput`: operations per second over operations per second. `cpu-cost`: the other side's
   * server CPU per operation over this side's — the same comparison when the load generator, not
   * the server, limits one side (it does for the bare floors on a 2-core machine).
   */
  kind: 'throughput' | 'cpu-cost';
  value: number;
  /** The target the issue sets for it, when it sets one. */
  target?: number;
}

export interface ScenarioResult {
  id: string;
  title: string;
  /** What one operation is: a request, or a whole flow. */
  operation: 'request' | 'flow';
  rows: ScenarioRow[];
  ratios: Ratio[];
  notes?: string[];
}

export function throughputOf(rows: ScenarioRow[], server: string): number {
  return rows.find((r) => r.server === server)?.measurement.throughput ?? Number.NaN;
}

export function ratio(rows: ScenarioRow[], over: string, under: string, target?: number): Ratio {
  const value = throughputOf(rows, over) / throughputOf(rows, under);
  return { label: `${over} / ${under}`, kind: 'throughput', value: Number(value.toFixed(3)), ...(target === undefined ? {} : { target }) };
}

/** How `over` compares with `under` in server CPU per operation (1 = as cheap; 0.5 = twice the cost). */
export function costRatio(rows: ScenarioRow[], over: string, under: string, target?: number): Ratio {
  const cost = (server: string) => rows.find((r) => r.server === server)?.measurement.serverCpuMsPerOp ?? Number.NaN;
  const value = cost(under) / cost(over);
  return { label: `${over} / ${under}`, kind: 'cpu-cost', value: Number(value.toFixed(3)), ...(target === undefined ? {} : { target }) };
}

/** An unmeasured run first (JIT, caches, connections), then the measured one. */
export async function warmThenMeasure(
  options: BenchOptions,
  measure: (durationMs: number) => Promise<Measurement>,
  warm: (durationMs: number) => Promise<LoadResult>,
): Promise<Measurement> {
  if (options.warmupSeconds > 0) await warm(options.warmupSeconds * 1000);
  return measure(options.durationSeconds * 1000);
}

/** A closed loop of `operation` at `concurrency`, for `durationMs`. */
export function loop(concurrency: number, operation: () => Promise<void>): (durationMs: number) => Promise<LoadResult> {
  return (durationMs) => runClosedLoop({ concurrency, durationMs, operation });
}

/*
 * What "normal" is for one signal of one TPP, learned online from one count per time bucket
 * (requests to /token in a minute, invalid_grant answers in a minute, distinct customers…).
 *
 * - Level and spread: an exponentially weighted mean and variance (West 1979 / Finch 2009,
 *   "Incremental calculation of weighted mean and variance"), so old behaviour fades at a known
 *   rate and the state is three numbers, cheap to keep in Redis for every TPP.
 * - Seasonality: a second EWMA of the level per hour of the day (UTC). Once an hour has been seen
 *   often enough it is the expectation for that hour: a TPP that batches at 02:00 is not an anomaly
 *   at 02:00, and busy afternoons do not hide a quiet-hours spike.
 * - Counts are at least Poisson-noisy: the spread used for scoring never falls below √expected (and
 *   1), so a TPP with very regular traffic is not flagged for one extra request.
 * - Warm-up: nothing is judged until `warmupBuckets` buckets have been learned.
 * - Learning is robust (see detector.ts): a bucket counts at most two spreads above normal, so an
 *   attack is not learned as normal.
 */

export interface BaselineState {
  /** Buckets learned. */
  n: number;
  mean: number;
  variance: number;
  /** Per UTC hour: the EWMA level and how many buckets of that hour were learned. */
  hourly: number[];
  hourlyN: number[];
}

export interface BaselineParameters {
  /** Weight of the newest bucket in the level and spread (≈ 2 / (span + 1)). */
  alpha: number;
  /** Weight of the newest bucket in its hour's level. */
  hourlyAlpha: number;
  /** Buckets of an hour seen before that hour's own level is the expectation. */
  hourlyMinimum: number;
  warmupBuckets: number;
}

export function emptyBaseline(): BaselineState {
  return { n: 0, mean: 0, variance: 0, hourly: new Array<number>(24).fill(0), hourlyN: new Array<number>(24).fill(0) };
}

export interface Expectation {
  expected: number;
  /** The spread used for scoring (with the Poisson floor). */
  spread: number;
  warmedUp: boolean;
}

export function expectationAt(state: BaselineState, hour: number, p: BaselineParameters): Expectation {
  const seasonal = (state.hourlyN[hour] ?? 0) >= p.hourlyMinimum;
  const expected = seasonal ? state.hourly[hour]! : state.mean;
  const spread = Math.max(Math.sqrt(Math.max(state.variance, 0)), Math.sqrt(Math.max(expected, 0)), 1);
  return { expected, spread, warmedUp: state.n >= p.warmupBuckets };
}

/** How many spreads above the expectation a count is (only excess matters: a quiet TPP is no threat). */
export function score(count: number, e: Expectation): number {
  return Math.max(0, (count - e.expected) / e.spread);
}

/** The count at which a bucket reaches score `z` — to judge a bucket while it is still filling. */
export function countForScore(z: number, e: Expectation): number {
  return e.expected + z * e.spread;
}

/** Learns one bucket's count. Returns a new state; the given one is not changed. */
export function learn(state: BaselineState, count: number, hour: number, p: BaselineParameters): BaselineState {
  const next: BaselineState = { ...state, hourly: [...state.hourly], hourlyN: [...state.hourlyN] };
  if (state.n === 0) {
    next.mean = count;
    next.variance = 0;
  } else {
    const diff = count - state.mean;
    const increment = p.alpha * diff;
    next.mean = state.mean + increment;
    next.variance = (1 - p.alpha) * (state.variance + diff * increment);
  }
  next.n = state.n + 1;
  const seen = state.hourlyN[hour] ?? 0;
  next.hourly[hour] = seen === 0 ? count : state.hourly[hour]! + p.hourlyAlpha * (count - state.hourly[hour]!);
  next.hourlyN[hour] = seen + 1;
  return next;
}

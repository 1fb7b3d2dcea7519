/*
 * Request-rate counters behind the rate limits on PAR, token and registration (src/http/rate-limits.ts):
 * fixed windows that start with a key's first request and count every request made in them, refused
 * ones included, so that hammering a limit never shortens its window. One request touches all its
 * counters (its address's and its client certificate's) in one step of the store — one Redis script,
 * one round trip — and is then judged against each counter's limit.
 */

/** One counter a request is counted under: a storage key and the length of its window. */
export interface RateCounter {
  key: string;
  windowSeconds: number;
}

export interface RateCount {
  /** Requests counted in the key's current window, this one included. */
  count: number;
  /** Milliseconds until the window ends and the count starts afresh. */
  msBeforeReset: number;
}

/** Where the counters live; implemented in src/storage (Redis, in process). */
export interface RateCounterStore {
  /** Counts one request under every counter, in one step; the counts in the same order. */
  hit(counters: readonly RateCounter[]): Promise<RateCount[]>;
}

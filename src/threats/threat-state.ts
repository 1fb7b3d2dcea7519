import type { BaselineState } from './streaming-baseline.ts';

/*
 * Where the detector keeps what it counts and what it has learned. With Redis (production) every
 * instance counts into the same buckets and reads the same baselines; claims (SET NX) make one
 * instance fold a bucket and raise a flag, not each. In memory for the embedded single process.
 * (src/storage/redis/threat-state.ts, src/storage/embedded/threat-state.ts)
 */

/** What the detector knows about one entity. */
export interface EntityModel {
  /** The last bucket learned (buckets with no traffic since then are learned as zeros). */
  lastBucket: number;
  signals: Record<string, BaselineState>;
}

/** One entity's share of an observed request: what to count, in which bucket. */
export interface EntityCount {
  bucket: number;
  entity: string;
  signals: readonly string[];
  distinct: readonly [string, string][];
  /** A source range to add to the entity's known ranges. */
  range?: string;
  /** Also read the entity's learned model (the detector reads it once per bucket). */
  withModel?: boolean;
}

export interface Counted {
  /** Each signal's count in the bucket, this request included. */
  counts: number[];
  /** Whether the request's source range was new for the entity (and how many it now has). */
  rangeIsNew: boolean;
  ranges: number;
  /** The entity's model as it was stored, when asked for (undefined when none is learned yet). */
  model?: EntityModel;
}

export interface ThreatState {
  /**
   * Counts every entity of one or more requests, in the order given, in one step of the store (one
   * Redis script: one command and one reply however many requests and entities it carries).
   */
  count(entities: readonly EntityCount[]): Promise<Counted[]>;
  /** The counts of a bucket (distinct signals as cardinalities). */
  counts(bucket: number, entity: string): Promise<Record<string, number>>;
  /** Entities with traffic in a bucket. */
  active(bucket: number): Promise<string[]>;
  /** True for exactly one caller per key (until `ttlSeconds`). */
  claim(key: string, ttlSeconds: number): Promise<boolean>;
  loadModel(entity: string): Promise<EntityModel | undefined>;
  saveModel(entity: string, model: EntityModel): Promise<void>;
}

/** How long a bucket's counters live: long enough to be folded late, then gone. */
export const BUCKET_KEEP = 10;

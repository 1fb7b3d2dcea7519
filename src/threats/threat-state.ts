import type { Redis } from 'ioredis';
import type { BaselineState } from './streaming-baseline.ts';

/*
 * Where the detector keeps what it counts and what it has learned. With Redis (production) every
 * instance counts into the same buckets and reads the same baselines; claims (SET NX) make one
 * instance fold a bucket and raise a flag, not each. In memory for the embedded single process.
 */

/** What the detector knows about one entity. */
export interface EntityModel {
  /** The last bucket learned (buckets with no traffic since then are learned as zeros). */
  lastBucket: number;
  signals: Record<string, BaselineState>;
}

export interface Counted {
  /** Each signal's count in the bucket, this request included. */
  counts: number[];
  /** Whether the request's source range was new for the entity (and how many it now has). */
  rangeIsNew: boolean;
  ranges: number;
}

export interface ThreatState {
  /** Adds one request's signals to a bucket, and its source range to the entity's known ranges. */
  count(bucket: number, entity: string, signals: readonly string[], distinct: readonly [string, string][], range?: string): Promise<Counted>;
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
const BUCKET_KEEP = 10;

export function createRedisThreatState(redis: Redis, prefix: string, bucketSeconds: number): ThreatState {
  const p = `${prefix}threat:`;
  const keep = bucketSeconds * BUCKET_KEEP;
  const distinctKeys = (bucket: number, entity: string) => `${p}d:${bucket}:${entity}`;
  return {
    async count(bucket, entity, signals, distinct, range) {
      const counts = `${p}c:${bucket}:${entity}`;
      const multi = redis.multi();
      for (const s of signals) multi.hincrby(counts, s, 1);
      if (range !== undefined) {
        multi.sadd(`${p}r:${entity}`, range);
        multi.scard(`${p}r:${entity}`);
        multi.expire(`${p}r:${entity}`, 90 * 86_400);
      }
      multi.expire(counts, keep);
      for (const [signal, member] of distinct) {
        multi.pfadd(`${distinctKeys(bucket, entity)}:${signal}`, member);
        multi.expire(`${distinctKeys(bucket, entity)}:${signal}`, keep);
        multi.sadd(`${distinctKeys(bucket, entity)}`, signal);
      }
      multi.expire(distinctKeys(bucket, entity), keep);
      multi.sadd(`${p}a:${bucket}`, entity);
      multi.expire(`${p}a:${bucket}`, keep);
      const results = (await multi.exec()) ?? [];
      const at = (i: number) => Number(results[i]?.[1] ?? 0);
      return {
        counts: signals.map((_, i) => at(i)),
        rangeIsNew: range !== undefined && at(signals.length) === 1,
        ranges: range === undefined ? 0 : at(signals.length + 1),
      };
    },
    async counts(bucket, entity) {
      const raw = await redis.hgetall(`${p}c:${bucket}:${entity}`);
      const out: Record<string, number> = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
      for (const signal of await redis.smembers(distinctKeys(bucket, entity))) {
        out[signal] = await redis.pfcount(`${distinctKeys(bucket, entity)}:${signal}`);
      }
      return out;
    },
    active: (bucket) => redis.smembers(`${p}a:${bucket}`),
    async claim(key, ttlSeconds) {
      return (await redis.set(`${p}k:${key}`, '1', 'EX', Math.max(1, Math.ceil(ttlSeconds)), 'NX')) === 'OK';
    },
    async loadModel(entity) {
      const raw = await redis.get(`${p}m:${entity}`);
      return raw === null ? undefined : (JSON.parse(raw) as EntityModel);
    },
    async saveModel(entity, model) {
      // Learned baselines outlive restarts; a TPP silent for 90 days starts over.
      await redis.set(`${p}m:${entity}`, JSON.stringify(model), 'EX', 90 * 86_400);
    },
  };
}

export function createMemoryThreatState(): ThreatState {
  const buckets = new Map<number, Map<string, { counts: Map<string, number>; distinct: Map<string, Set<string>> }>>();
  const claims = new Map<string, number>();
  const models = new Map<string, string>();
  const ranges = new Map<string, Set<string>>();
  const forget = (current: number) => {
    for (const b of buckets.keys()) if (b < current - BUCKET_KEEP) buckets.delete(b);
    const now = Date.now();
    for (const [k, until] of claims) if (until < now) claims.delete(k);
  };
  const entry = (bucket: number, entity: string) => {
    let byEntity = buckets.get(bucket);
    if (byEntity === undefined) {
      forget(bucket);
      byEntity = new Map();
      buckets.set(bucket, byEntity);
    }
    let e = byEntity.get(entity);
    if (e === undefined) {
      e = { counts: new Map(), distinct: new Map() };
      byEntity.set(entity, e);
    }
    return e;
  };
  return {
    async count(bucket, entity, signals, distinct, range) {
      const e = entry(bucket, entity);
      let rangeIsNew = false;
      const known = ranges.get(entity) ?? new Set<string>();
      if (range !== undefined && !known.has(range)) {
        known.add(range);
        ranges.set(entity, known);
        rangeIsNew = true;
      }
      for (const [signal, member] of distinct) {
        const set = e.distinct.get(signal) ?? new Set<string>();
        set.add(member);
        e.distinct.set(signal, set);
      }
      const counts = signals.map((s) => {
        const n = (e.counts.get(s) ?? 0) + 1;
        e.counts.set(s, n);
        return n;
      });
      return { counts, rangeIsNew, ranges: known.size };
    },
    async counts(bucket, entity) {
      const e = buckets.get(bucket)?.get(entity);
      if (e === undefined) return {};
      return { ...Object.fromEntries(e.counts), ...Object.fromEntries([...e.distinct].map(([s, set]) => [s, set.size])) };
    },
    async active(bucket) {
      return [...(buckets.get(bucket)?.keys() ?? [])];
    },
    async claim(key, ttlSeconds) {
      const now = Date.now();
      if ((claims.get(key) ?? 0) > now) return false;
      claims.set(key, now + ttlSeconds * 1000);
      return true;
    },
    async loadModel(entity) {
      const raw = models.get(entity);
      return raw === undefined ? undefined : (JSON.parse(raw) as EntityModel);
    },
    async saveModel(entity, model) {
      models.set(entity, JSON.stringify(model));
    },
  };
}

import type { Redis } from 'ioredis';
import { BUCKET_KEEP, type EntityModel, type ThreatState } from '../../threats/threat-state.ts';

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

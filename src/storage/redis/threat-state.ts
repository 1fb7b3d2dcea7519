import type { Redis } from 'ioredis';
import { BUCKET_KEEP, type Counted, type EntityModel, type ThreatState } from '../../threats/threat-state.ts';

/*
 * The detector's state in Redis, shared by every instance. Counting is one Lua script for every
 * entity of every request it is given, so an observation (or a batch of them) costs one command and
 * one reply instead of a MULTI of ~10 commands per entity. Single-node Redis (or Sentinel): the
 * script touches only the keys it is given.
 */

/** Learned source ranges outlive restarts; a client silent for 90 days starts over. */
const RANGES_KEEP_SECONDS = 90 * 86_400;

/**
 * KEYS per entity: counts, distinct signals, active entities of the bucket, known ranges, model, then
 * one HyperLogLog per distinct signal. ARGV: bucket keep and ranges keep (s), then per entity: entity,
 * number of signals, number of distinct pairs, has range (1/0), with model (1/0), the signals, the
 * distinct (signal, member) pairs, the range. Replies per entity: each signal's count, range new
 * (1/0), known ranges, the model's JSON ('' when none or not asked for).
 */
const COUNT = `
local keep, rangesKeep = ARGV[1], ARGV[2]
local a, k, out = 3, 1, {}
while a <= #ARGV do
  local entity, nSignals, nDistinct = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local hasRange, withModel = ARGV[a + 3] == '1', ARGV[a + 4] == '1'
  a = a + 5
  local counts, distinctSet, active, ranges, model = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  k = k + 5
  local reply = {}
  for i = 1, nSignals do
    reply[i] = redis.call('HINCRBY', counts, ARGV[a], 1)
    a = a + 1
  end
  redis.call('EXPIRE', counts, keep)
  for i = 1, nDistinct do
    redis.call('PFADD', KEYS[k], ARGV[a + 1])
    redis.call('EXPIRE', KEYS[k], keep)
    redis.call('SADD', distinctSet, ARGV[a])
    k = k + 1
    a = a + 2
  end
  redis.call('EXPIRE', distinctSet, keep)
  local isNew, known = 0, 0
  if hasRange then
    isNew = redis.call('SADD', ranges, ARGV[a])
    known = redis.call('SCARD', ranges)
    redis.call('EXPIRE', ranges, rangesKeep)
    a = a + 1
  end
  redis.call('SADD', active, entity)
  redis.call('EXPIRE', active, keep)
  reply[nSignals + 1] = isNew
  reply[nSignals + 2] = known
  reply[nSignals + 3] = withModel and (redis.call('GET', model) or '') or ''
  out[#out + 1] = reply
end
return out`;

type ScriptedRedis = Redis & { moatThreatCount(...args: (string | number)[]): Promise<(number | string)[][]> };

export function createRedisThreatState(client: Redis, prefix: string, bucketSeconds: number): ThreatState {
  const redis = client as ScriptedRedis;
  if (typeof redis.moatThreatCount !== 'function') redis.defineCommand('moatThreatCount', { lua: COUNT });
  const p = `${prefix}threat:`;
  const keep = bucketSeconds * BUCKET_KEEP;
  const distinctKeys = (bucket: number, entity: string) => `${p}d:${bucket}:${entity}`;
  return {
    async count(entities) {
      const keys: string[] = [];
      const args: (string | number)[] = [keep, RANGES_KEEP_SECONDS];
      for (const { bucket, entity, signals, distinct, range, withModel } of entities) {
        keys.push(`${p}c:${bucket}:${entity}`, distinctKeys(bucket, entity), `${p}a:${bucket}`, `${p}r:${entity}`, `${p}m:${entity}`);
        keys.push(...distinct.map(([signal]) => `${distinctKeys(bucket, entity)}:${signal}`));
        args.push(entity, signals.length, distinct.length, range === undefined ? 0 : 1, withModel === true ? 1 : 0, ...signals, ...distinct.flat());
        if (range !== undefined) args.push(range);
      }
      const replies = await redis.moatThreatCount(keys.length, ...keys, ...args);
      return entities.map(({ signals, range }, i): Counted => {
        const reply = replies[i]!;
        const model = reply[signals.length + 2];
        return {
          counts: signals.map((_, j) => Number(reply[j])),
          rangeIsNew: range !== undefined && Number(reply[signals.length]) === 1,
          ranges: range === undefined ? 0 : Number(reply[signals.length + 1]),
          ...(typeof model === 'string' && model !== '' ? { model: JSON.parse(model) as EntityModel } : {}),
        };
      });
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

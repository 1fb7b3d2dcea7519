import { BUCKET_KEEP, type EntityModel, type ThreatState } from '../../threats/threat-state.ts';

export function createMemoryThreatState(): ThreatState {
  const buckets = new Map<number, Map<string, { counts: Map<string, number>; distinct: Map<string, Set<string>> }>>();
  const claims = new Map<string, number>();
  const models = new Map<string, string>();
  const ranges = new Map<string, Set<string>>();
  // Expired claims are swept at most once a second of wall time: claim() checks expiry itself, and
  // a sweep on every new bucket walked all claims each time when buckets come faster than real time
  // (the threat simulator replays days in seconds: quadratic in the claims held).
  let sweptAt = 0;
  const forget = (current: number) => {
    for (const b of buckets.keys()) if (b < current - BUCKET_KEEP) buckets.delete(b);
    const now = Date.now();
    if (now - sweptAt < 1000) return;
    sweptAt = now;
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
    async count(entities) {
      return entities.map(({ bucket, entity, signals, distinct, range, withModel }) => {
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
        const raw = withModel === true ? models.get(entity) : undefined;
        return { counts, rangeIsNew, ranges: known.size, ...(raw === undefined ? {} : { model: JSON.parse(raw) as EntityModel }) };
      });
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

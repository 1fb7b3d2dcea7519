import type { AdapterPayload } from 'oidc-provider';
import type { ConsumeResult, ModelStore } from '../../kernel/model-store.ts';

interface Entry {
  payload: AdapterPayload;
  /** Epoch milliseconds; undefined for no expiry. */
  expiresAt?: number;
}

/**
 * The embedded default's short-lived store: Maps in this process. Single-threaded JavaScript makes
 * `consume` atomic as long as nothing awaits between the check and the set, and nothing does.
 * One process only — which is why production refuses it.
 */
/** Payloads go through JSON, as they do in Postgres and Redis, so every backend returns the same shapes. */
function copy(payload: AdapterPayload): AdapterPayload {
  return JSON.parse(JSON.stringify(payload)) as AdapterPayload;
}

export function createMemoryModelStore(now: () => number = Date.now): ModelStore {
  const entries = new Map<string, Entry>();
  const byGrant = new Map<string, Set<string>>();
  const byUid = new Map<string, string>();
  const byUserCode = new Map<string, string>();
  const key = (model: string, id: string) => `${model}:${id}`;

  const live = (k: string): Entry | undefined => {
    const entry = entries.get(k);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= now()) {
      remove(k);
      return undefined;
    }
    return entry;
  };

  const remove = (k: string) => {
    const entry = entries.get(k);
    if (entry === undefined) return;
    entries.delete(k);
    const model = k.slice(0, k.indexOf(':'));
    const { grantId, uid, userCode } = entry.payload;
    if (grantId !== undefined) byGrant.get(`${model}:${grantId}`)?.delete(k);
    if (uid !== undefined && byUid.get(`${model}:${uid}`) === k) byUid.delete(`${model}:${uid}`);
    if (userCode !== undefined && byUserCode.get(`${model}:${userCode}`) === k) byUserCode.delete(`${model}:${userCode}`);
  };

  return {
    async upsert(model, id, payload, expiresIn) {
      const k = key(model, id);
      remove(k);
      entries.set(k, { payload: copy(payload), ...(expiresIn === undefined ? {} : { expiresAt: now() + expiresIn * 1000 }) });
      if (payload.grantId !== undefined) {
        const g = `${model}:${payload.grantId}`;
        if (!byGrant.has(g)) byGrant.set(g, new Set());
        byGrant.get(g)!.add(k);
      }
      if (payload.uid !== undefined) byUid.set(`${model}:${payload.uid}`, k);
      if (payload.userCode !== undefined) byUserCode.set(`${model}:${payload.userCode}`, k);
    },
    async find(model, id) {
      const entry = live(key(model, id));
      return entry === undefined ? undefined : copy(entry.payload);
    },
    async findByUid(model, uid) {
      const k = byUid.get(`${model}:${uid}`);
      const entry = k === undefined ? undefined : live(k);
      return entry === undefined ? undefined : copy(entry.payload);
    },
    async findByUserCode(model, userCode) {
      const k = byUserCode.get(`${model}:${userCode}`);
      const entry = k === undefined ? undefined : live(k);
      return entry === undefined ? undefined : copy(entry.payload);
    },
    async recordOnce(model, id, payload, expiresIn) {
      const k = key(model, id);
      if (live(k) !== undefined) return false;
      entries.set(k, { payload: copy(payload), expiresAt: now() + expiresIn * 1000 });
      return true;
    },
    async consume(model, id): Promise<ConsumeResult> {
      const entry = live(key(model, id));
      if (entry === undefined) return 'absent';
      if (entry.payload.consumed !== undefined) return 'already-consumed';
      entry.payload.consumed = Math.floor(now() / 1000);
      return 'consumed';
    },
    async destroy(model, id) {
      remove(key(model, id));
    },
    async revokeByGrantId(model, grantId) {
      const g = `${model}:${grantId}`;
      for (const k of [...(byGrant.get(g) ?? [])]) remove(k);
      byGrant.delete(g);
    },
    async purgeExpired() {
      let purged = 0;
      const t = now();
      for (const [k, entry] of entries) {
        if (entry.expiresAt !== undefined && entry.expiresAt <= t) {
          remove(k);
          purged += 1;
        }
      }
      for (const [g, members] of byGrant) if (members.size === 0) byGrant.delete(g);
      return purged;
    },
    async ping() {},
    async close() {
      entries.clear();
    },
  };
}

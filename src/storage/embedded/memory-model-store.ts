import type { AdapterPayload } from 'oidc-provider';
import type { ConsumeResult, ModelStore } from '../../kernel/model-store.ts';

interface Entry {
  payload: AdapterPayload;
  /** Epoch milliseconds; undefined for no expiry. */
  expiresAt?: number;
}

/*
 * The embedded default's short-lived store: Maps in this process. Single-threaded JavaScript makes
 * `consume` atomic as long as nothing awaits between the check and the set, and nothing does.
 * One process only — which is why production refuses it.
 *
 * It holds every live token: at a few hundred client_credentials calls a second and a 300 s lifetime,
 * about a hundred thousand of them, some 60 MiB at the size an entry used to have (issue 20: the
 * embedded default's RSS under 350 MiB). So an entry is kept small: one Map per model keyed by the id itself (no "model:id" string
 * beside it), the payload's jti is that same string, and the values a client's tokens all repeat
 * (its id, audience, scope, certificate thumbprint) are one string each, shared between entries:
 * 653 heap bytes per client_credentials token before, 309 after (`node --expose-gc
 * bench/store-entry.ts`).
 */

/**
 * The payload fields whose values repeat across many entries and have few distinct values (a client's,
 * a resource's). Per-grant or per-session ones (grantId, sid) repeat over a handful of entries only and
 * would fill the table with values shared by no one.
 */
const SHARED_FIELDS = ['kind', 'clientId', 'aud', 'scope', 'x5t#S256', 'acr', 'resource'] as const;
/** Distinct shared values kept before the table starts again: sharing saves memory, it is never needed. */
const SHARED_VALUES_MAX = 10_000;

/** Payloads go through JSON, as they do in Postgres and Redis, so every backend returns the same shapes. */
function copy(payload: AdapterPayload): AdapterPayload {
  return JSON.parse(JSON.stringify(payload)) as AdapterPayload;
}

export function createMemoryModelStore(now: () => number = Date.now): ModelStore {
  const models = new Map<string, Map<string, Entry>>();
  const byGrant = new Map<string, Set<string>>();
  const byUid = new Map<string, string>();
  const byUserCode = new Map<string, string>();
  const shared = new Map<string, string>();

  const entriesOf = (model: string): Map<string, Entry> => {
    let entries = models.get(model);
    if (entries === undefined) {
      entries = new Map();
      models.set(model, entries);
    }
    return entries;
  };

  /** The stored copy of a payload, its repeated strings shared with other entries. */
  const stored = (id: string, payload: AdapterPayload): AdapterPayload => {
    const kept = copy(payload) as Record<string, unknown>;
    if (kept.jti === id) kept.jti = id;
    for (const field of SHARED_FIELDS) {
      const value = kept[field];
      if (typeof value !== 'string') continue;
      const one = shared.get(value);
      if (one !== undefined) {
        kept[field] = one;
      } else {
        if (shared.size >= SHARED_VALUES_MAX) shared.clear();
        shared.set(value, value);
      }
    }
    return kept as AdapterPayload;
  };

  const live = (model: string, id: string): Entry | undefined => {
    const entry = models.get(model)?.get(id);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= now()) {
      remove(model, id);
      return undefined;
    }
    return entry;
  };

  const remove = (model: string, id: string) => {
    const entries = models.get(model);
    const entry = entries?.get(id);
    if (entry === undefined) return;
    entries!.delete(id);
    const { grantId, uid, userCode } = entry.payload;
    if (grantId !== undefined) byGrant.get(`${model}:${grantId}`)?.delete(id);
    if (uid !== undefined && byUid.get(`${model}:${uid}`) === id) byUid.delete(`${model}:${uid}`);
    if (userCode !== undefined && byUserCode.get(`${model}:${userCode}`) === id) byUserCode.delete(`${model}:${userCode}`);
  };

  return {
    async upsert(model, id, payload, expiresIn) {
      remove(model, id);
      entriesOf(model).set(id, { payload: stored(id, payload), ...(expiresIn === undefined ? {} : { expiresAt: now() + expiresIn * 1000 }) });
      if (payload.grantId !== undefined) {
        const g = `${model}:${payload.grantId}`;
        if (!byGrant.has(g)) byGrant.set(g, new Set());
        byGrant.get(g)!.add(id);
      }
      if (payload.uid !== undefined) byUid.set(`${model}:${payload.uid}`, id);
      if (payload.userCode !== undefined) byUserCode.set(`${model}:${payload.userCode}`, id);
    },
    async find(model, id) {
      const entry = live(model, id);
      return entry === undefined ? undefined : copy(entry.payload);
    },
    async findByUid(model, uid) {
      const id = byUid.get(`${model}:${uid}`);
      const entry = id === undefined ? undefined : live(model, id);
      return entry === undefined ? undefined : copy(entry.payload);
    },
    async findByUserCode(model, userCode) {
      const id = byUserCode.get(`${model}:${userCode}`);
      const entry = id === undefined ? undefined : live(model, id);
      return entry === undefined ? undefined : copy(entry.payload);
    },
    async recordOnce(model, id, payload, expiresIn) {
      if (live(model, id) !== undefined) return false;
      entriesOf(model).set(id, { payload: stored(id, payload), expiresAt: now() + expiresIn * 1000 });
      return true;
    },
    async consume(model, id): Promise<ConsumeResult> {
      const entry = live(model, id);
      if (entry === undefined) return 'absent';
      if (entry.payload.consumed !== undefined) return 'already-consumed';
      entry.payload.consumed = Math.floor(now() / 1000);
      return 'consumed';
    },
    async destroy(model, id) {
      remove(model, id);
    },
    async revokeByGrantId(model, grantId) {
      const g = `${model}:${grantId}`;
      for (const id of [...(byGrant.get(g) ?? [])]) remove(model, id);
      byGrant.delete(g);
    },
    async purgeExpired() {
      let purged = 0;
      const t = now();
      for (const [model, entries] of models) {
        for (const [id, entry] of entries) {
          if (entry.expiresAt !== undefined && entry.expiresAt <= t) {
            remove(model, id);
            purged += 1;
          }
        }
      }
      for (const [g, members] of byGrant) if (members.size === 0) byGrant.delete(g);
      return purged;
    },
    async ping() {},
    async close() {
      models.clear();
      shared.clear();
    },
  };
}

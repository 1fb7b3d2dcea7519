import type { AdapterPayload } from 'oidc-provider';
import type { InvalidatingCache } from '../caching/invalidating-cache.ts';
import type { ModelStore } from '../kernel/model-store.ts';

/*
 * One durable oidc-provider model's reads kept in memory, on the invalidation bus
 * (src/caching/invalidation.ts). Two models are:
 *
 * - **Client** (topic `client`), on every read: oidc-provider looks the client up on every request
 *   that names one. It already keeps the Client object built from the metadata (keyed by a hash of
 *   it), so a hit here costs no schema validation either.
 * - **Grant** (topic `grant`), on introspection's reads only: introspection reads the Grant of every
 *   token it is asked about (oidc-provider's lib/actions/introspection.js), a Postgres read on every
 *   call, about a fifth of Moat's CPU there (bench/README.md). The authorization, token and
 *   grant-management paths read a Grant and save it back, and a copy saved from memory could undo a
 *   change another instance made a moment before: `servesReadsWhen` (the introspection scope,
 *   src/provider/introspection-scope.ts) keeps those reads on the store.
 *
 * Staleness: a change made through this store (saved, destroyed, consumed, or — for a grant — its
 * tokens revoked) forgets the entry before the call returns; one made on another instance, by the
 * CLI or by SQL is announced by Postgres at commit (the `oidc_model` trigger,
 * migrations/20261207000000_grant_announcements.sql); an entry is never served more than the
 * cache's maxAgeMs after it was read. Revoking a grant deletes its tokens as well, so a revoked
 * token is inactive at once everywhere, whatever a cache still holds of its grant.
 */

/** A payload as JSON text: each hit parses its own copy, so no caller can change the next one's. */
export type ModelPayloadCache = InvalidatingCache<string | undefined>;

export interface CachedModel {
  /** oidc-provider's model name, e.g. `Client` or `Grant`; every other model passes through. */
  model: string;
  cache: ModelPayloadCache;
  /** When reads may be answered from memory (always if omitted); other reads go to the store. */
  servesReadsWhen?: () => boolean;
}

export function cachedModelStore(store: ModelStore, { model, cache, servesReadsWhen = () => true }: CachedModel): ModelStore {
  const forgetting = async <T>(id: string | undefined, change: Promise<T>): Promise<T> => {
    try {
      return await change;
    } finally {
      if (id !== undefined) cache.invalidate(id);
    }
  };
  const cachedId = (m: string, id: string) => (m === model ? id : undefined);
  return {
    ...store,
    find: async (m, id) => {
      if (m !== model || !servesReadsWhen()) return store.find(m, id);
      const json = await cache.get(id, async () => {
        const payload = await store.find(m, id);
        return payload === undefined ? undefined : JSON.stringify(payload);
      });
      return json === undefined ? undefined : (JSON.parse(json) as AdapterPayload);
    },
    upsert: (m, id, payload, expiresIn) => forgetting(cachedId(m, id), store.upsert(m, id, payload, expiresIn)),
    destroy: (m, id) => forgetting(cachedId(m, id), store.destroy(m, id)),
    consume: (m, id) => forgetting(cachedId(m, id), store.consume(m, id)),
    // Any model's entries of a grant: the grant is on its way out (src/storage/adapter.ts revokeGrant).
    revokeByGrantId: (m, grantId) => forgetting(model === 'Grant' ? grantId : undefined, store.revokeByGrantId(m, grantId)),
  };
}

import type { AdapterPayload } from 'oidc-provider';
import type { InvalidatingCache } from '../caching/invalidating-cache.ts';
import type { ModelStore } from '../kernel/model-store.ts';

/*
 * Introspection reads the Grant of every token it is asked about (oidc-provider's
 * lib/actions/introspection.js: the grant exists, has not expired, names the token's client and
 * customer), and grants are durable: a Postgres read on every introspection, about a fifth of
 * Moat's CPU there (bench/README.md). Those reads are kept in memory (topic `grant`), and only
 * those: the authorization, token and grant-management paths read a Grant and save it back, and a
 * copy saved from memory could undo a change another instance made a moment before. So the cache
 * answers a read only while `forIntrospection()` says the request is an introspection; every other
 * read goes to the store, as before.
 *
 * Staleness: a change made through this store (a grant saved, destroyed, or its tokens revoked)
 * forgets the entry before the call returns; one made on another instance, by the CLI or by SQL is
 * announced by Postgres at commit (the trigger in migrations/20261207000000_grant_announcements.sql)
 * and, for revocations, by revocation-announcing-store.ts; an entry is never served more than the
 * cache's maxAgeMs after it was read. Revoking a grant deletes its tokens as well, so a revoked
 * token is inactive at once everywhere, whatever a cache still holds of its grant.
 */

const GRANT = 'Grant';

/** A grant's payload as JSON text: each hit parses its own copy, so no caller can change the next one's. */
export type IntrospectionGrantCache = InvalidatingCache<string | undefined>;

export function cachedIntrospectionGrants(store: ModelStore, cache: IntrospectionGrantCache, forIntrospection: () => boolean): ModelStore {
  const after = async <T>(grantId: string | undefined, change: Promise<T>): Promise<T> => {
    try {
      return await change;
    } finally {
      if (grantId !== undefined) cache.invalidate(grantId);
    }
  };
  const grantIdOf = (model: string, id: string) => (model === GRANT ? id : undefined);
  return {
    ...store,
    find: async (model, id) => {
      if (model !== GRANT || !forIntrospection()) return store.find(model, id);
      const json = await cache.get(id, async () => {
        const payload = await store.find(model, id);
        return payload === undefined ? undefined : JSON.stringify(payload);
      });
      return json === undefined ? undefined : (JSON.parse(json) as AdapterPayload);
    },
    upsert: (model, id, payload, expiresIn) => after(grantIdOf(model, id), store.upsert(model, id, payload, expiresIn)),
    destroy: (model, id) => after(grantIdOf(model, id), store.destroy(model, id)),
    consume: (model, id) => after(grantIdOf(model, id), store.consume(model, id)),
    // Any model's entries of a grant: the grant is on its way out (src/storage/adapter.ts revokeGrant).
    revokeByGrantId: (model, grantId) => after(grantId, store.revokeByGrantId(model, grantId)),
  };
}

import type { AdapterPayload } from 'oidc-provider';
import type { InvalidatingCache } from '../caching/invalidating-cache.ts';
import type { ModelStore } from '../kernel/model-store.ts';

/*
 * Clients are durable (Postgres), and oidc-provider looks the client up on every request that names
 * one: their metadata is kept in memory (topic `client`). oidc-provider already keeps the Client
 * object built from the metadata (keyed by a hash of it), so a hit here costs no schema validation.
 * A registration, update or deletion through this store forgets the entry before it returns; one
 * made elsewhere is announced by Postgres (src/caching/invalidation.ts).
 */

const CLIENT = 'Client';

/** A client's metadata as JSON text: each hit parses its own copy, so no caller can change the next one's. */
export type ClientMetadataCache = InvalidatingCache<string | undefined>;

export function cachedClientStore(store: ModelStore, cache: ClientMetadataCache): ModelStore {
  const after = async <T>(model: string, id: string, change: Promise<T>): Promise<T> => {
    try {
      return await change;
    } finally {
      if (model === CLIENT) cache.invalidate(id);
    }
  };
  return {
    ...store,
    find: async (model, id) => {
      if (model !== CLIENT) return store.find(model, id);
      const json = await cache.get(id, async () => {
        const payload = await store.find(model, id);
        return payload === undefined ? undefined : JSON.stringify(payload);
      });
      return json === undefined ? undefined : (JSON.parse(json) as AdapterPayload);
    },
    upsert: (model, id, payload, expiresIn) => after(model, id, store.upsert(model, id, payload, expiresIn)),
    destroy: (model, id) => after(model, id, store.destroy(model, id)),
    consume: (model, id) => after(model, id, store.consume(model, id)),
  };
}

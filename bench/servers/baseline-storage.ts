import type { Adapter } from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

/*
 * The baseline's storage: oidc-provider's own in-memory adapter, the one it uses when configured
 * with none — but over a larger store. Its default store keeps only the last ~1000 entries (it is a
 * development aid), so under benchmark load it would evict the client, the grants and the bulk-made
 * codes before they are used and the baseline would answer invalid_client / invalid_grant. This is
 * the only place the benchmark reaches into oidc-provider's internals; both imports are plain files
 * of the package (it has no `exports` map), typed in bench/oidc-provider-internals.d.ts.
 */

/** Entries kept before the oldest generation is dropped: more than any benchmark run writes. */
const MAX_ENTRIES = 10_000_000;

export function createBaselineAdapter(clockTolerance: number): (model: string) => Adapter {
  const store = new LRU({ maxSize: MAX_ENTRIES });
  return (model) => new MemoryAdapter(model, store, clockTolerance);
}

/** Stores client metadata where oidc-provider's Client.find looks for dynamic clients. */
export async function storeClient(adapterFor: (model: string) => Adapter, metadata: Record<string, unknown>): Promise<void> {
  const clientId = metadata.client_id;
  if (typeof clientId !== 'string') throw new Error('client metadata without client_id');
  await adapterFor('Client').upsert(clientId, metadata);
}

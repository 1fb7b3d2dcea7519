import type { InvalidatingCache } from '../caching/invalidating-cache.ts';
import type { Consent } from './consent.ts';
import type { ConsentStore } from './consent-store.ts';

/*
 * The consent behind a grant — read for every token a grant issues, every refresh and every API
 * call that checks its token's consent — kept in memory by grant id (topic `consent-grant`). Every
 * write returns the consent it wrote, whose grant's entry is forgotten before the write returns; a
 * write anywhere else is announced by Postgres (src/caching/invalidation.ts).
 */

export type ConsentByGrantCache = InvalidatingCache<Consent | undefined>;

export function cachedConsentStore(store: ConsentStore, cache: ConsentByGrantCache): ConsentStore {
  const forgetGrantOf = (consent: Consent) => {
    if (consent.grantId !== undefined) cache.invalidate(consent.grantId);
    return consent;
  };
  return {
    ...store,
    findByGrantId: (grantId) => cache.get(grantId, () => store.findByGrantId(grantId)),
    create: async (consent, by) => forgetGrantOf(await store.create(consent, by)),
    transition: async (id, to, by, patch) => {
      // The grant being bound (authorise) may have been looked up, and found nothing, before.
      if (patch?.grantId !== undefined) cache.invalidate(patch.grantId);
      return forgetGrantOf(await store.transition(id, to, by, patch));
    },
    amend: async (id, by, patch) => {
      // The grant it was bound to until now no longer leads to it.
      const before = await store.find(id);
      if (before !== undefined) forgetGrantOf(before);
      if (patch.grantId !== undefined) cache.invalidate(patch.grantId);
      return forgetGrantOf(await store.amend(id, by, patch));
    },
  };
}

import type { ModelStore } from '../kernel/model-store.ts';

/*
 * An introspection without `token_type_hint` looks the token up as an access token, as client
 * credentials (both short-lived: Redis) and as a refresh token (durable: Postgres) at once, and
 * takes the first it finds in that order (oidc-provider's lib/helpers/token_find.js). A resource
 * server introspects access tokens, so the Postgres read was made on every call to be ignored.
 * Here, while serving an introspection, the refresh-token read waits for the short-lived lookups of
 * the same value made before it in the same request, and is not made when one of them found an
 * entry: its answer would not be used. When they found nothing (a refresh token, an unknown value)
 * the read is made as before, so the introspection's answer never changes.
 */

/** The lookups of the introspection request being served, or undefined outside one. */
export type TokenLookupsOfRequest = () => Map<string, Promise<boolean>[]> | undefined;

const SHORT_LIVED_TOKENS = new Set(['AccessToken', 'ClientCredentials']);
const REFRESH_TOKEN = 'RefreshToken';

/** The short-lived store, telling the request's lookups what each token lookup found. */
export function recordingTokenLookups(store: ModelStore, lookups: TokenLookupsOfRequest): ModelStore {
  return {
    ...store,
    find: (model, id) => {
      const found = store.find(model, id);
      const request = SHORT_LIVED_TOKENS.has(model) ? lookups() : undefined;
      if (request !== undefined) {
        request.set(id, [
          ...(request.get(id) ?? []),
          found.then(
            (payload) => payload !== undefined,
            () => false,
          ),
        ]);
      }
      return found;
    },
  };
}

/** The durable store, not reading a refresh token that a short-lived lookup of the request already answered. */
export function refreshTokenReadsAfterShortLived(store: ModelStore, lookups: TokenLookupsOfRequest): ModelStore {
  return {
    ...store,
    find: async (model, id) => {
      const earlier = model === REFRESH_TOKEN ? lookups()?.get(id) : undefined;
      if (earlier !== undefined && (await Promise.all(earlier)).some(Boolean)) return undefined;
      return store.find(model, id);
    },
  };
}

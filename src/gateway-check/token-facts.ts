import { createHash } from 'node:crypto';

/*
 * What the check endpoint learns about an access token from storage — its client, grant, audience,
 * scopes, binding and consent — kept in memory per token, so that a warm token costs no storage
 * round trip. What is kept is only what cannot change without an announcement; everything about the
 * request itself (which certificate it came over, its DPoP proof, the route) is checked every time,
 * never kept.
 *
 * How long an entry lives: never past the token's own expiry, and not a moment after one of these is
 * announced (`forget`): the token destroyed (revoked at /revoke), its grant revoked (a consent revoked
 * or expired, a replayed code, a client's tokens revoked on quarantine), its client changed or
 * deleted, its bound certificate changed in the registry (revoked, retired). The announcements
 * come over src/caching/'s bus (Postgres LISTEN/NOTIFY across instances); this instance forgets
 * before the change's call returns (token-facts-invalidation.ts). While the bus is not live,
 * nothing is kept.
 *
 * A read racing a change: a load that began before a `forget` (of anything) is answered but not kept,
 * since it may have read the state from before the change.
 */

/** The facts of one active access token. */
export interface TokenFacts {
  /** oidc-provider's id of the token (its jti), as the store names it. */
  tokenId: string;
  clientId: string;
  grantId: string;
  /** The customer (`sub`); undefined for client credentials. */
  accountId: string | undefined;
  scopes: readonly string[];
  audiences: readonly string[];
  /** RFC 8705 §3.1 cnf.x5t#S256 */
  x5t: string | undefined;
  /** RFC 9449 §6 cnf.jkt */
  jkt: string | undefined;
  /** Epoch seconds. */
  expiresAt: number;
  consent: { id: string; accountIds: readonly string[]; permissions: readonly string[] } | undefined;
}

/** What a `forget` names: the keys an announcement carries. */
export type TokenFactsKey = 'token' | 'grant' | 'client' | 'certificate';

export interface TokenFactsCache {
  /** The facts of `token`: kept ones while they hold, else `load()`'s (kept when `load` found an active token). */
  get(token: string, load: () => Promise<TokenFacts | undefined>): Promise<TokenFacts | undefined>;
  /** Drops every entry of that token id, grant, client or certificate thumbprint, at once. */
  forget(key: TokenFactsKey, value: string): void;
  /** Drops everything (announcements may have been missed). */
  clear(): void;
  readonly size: number;
}

export interface TokenFactsCacheOptions {
  /** 0 keeps nothing: every check reads storage. */
  maxEntries: number;
  /**
   * Whether announcements from other instances are being heard (the bus is live); while not,
   * nothing is served from memory or kept, and every check reads storage.
   */
  live?: () => boolean;
  /** Epoch seconds; a test may freeze it. */
  now?: () => number;
}

/** The key of a token in memory: its digest, so a heap dump holds no usable token. */
function digestOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export function createTokenFactsCache(options: TokenFactsCacheOptions): TokenFactsCache {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const live = options.live ?? (() => true);
  const entries = new Map<string, TokenFacts>();
  // Indexes from what an announcement names to the entries it touches.
  const indexes: Record<TokenFactsKey, Map<string, Set<string>>> = { token: new Map(), grant: new Map(), client: new Map(), certificate: new Map() };
  let generation = 0;

  const keysOf = (facts: TokenFacts): [TokenFactsKey, string | undefined][] => [
    ['token', facts.tokenId],
    ['grant', facts.grantId],
    ['client', facts.clientId],
    ['certificate', facts.x5t],
  ];
  const remove = (digest: string) => {
    const facts = entries.get(digest);
    if (facts === undefined) return;
    entries.delete(digest);
    for (const [key, value] of keysOf(facts)) {
      if (value === undefined) continue;
      const set = indexes[key].get(value);
      set?.delete(digest);
      if (set?.size === 0) indexes[key].delete(value);
    }
  };
  const keep = (digest: string, facts: TokenFacts) => {
    if (options.maxEntries === 0) return;
    while (entries.size >= options.maxEntries) remove(entries.keys().next().value!);
    entries.set(digest, facts);
    for (const [key, value] of keysOf(facts)) {
      if (value === undefined) continue;
      const set = indexes[key].get(value) ?? new Set<string>();
      indexes[key].set(value, set);
      set.add(digest);
    }
  };

  return {
    async get(token, load) {
      const digest = digestOf(token);
      const hit = entries.get(digest);
      if (hit !== undefined) {
        if (hit.expiresAt > now() && live()) {
          // Least recently used first in the Map's order.
          entries.delete(digest);
          entries.set(digest, hit);
          return hit;
        }
        remove(digest);
      }
      const started = generation;
      const facts = await load();
      if (facts !== undefined && started === generation && facts.expiresAt > now() && live()) keep(digest, facts);
      return facts;
    },
    forget(key, value) {
      generation += 1;
      for (const digest of [...(indexes[key].get(value) ?? [])]) remove(digest);
    },
    clear() {
      generation += 1;
      for (const digest of [...entries.keys()]) remove(digest);
    },
    get size() {
      return entries.size;
    },
  };
}

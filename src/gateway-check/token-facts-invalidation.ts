import type { InvalidationBus, InvalidationTopic } from '../caching/invalidation.ts';
import type { Logger } from '../observability/logger.ts';
import type { TokenFactsCache, TokenFactsKey } from './token-facts.ts';

/*
 * The token facts cache on the cross-instance bus (src/caching/invalidation.ts). It hears:
 * `access-token` (a token destroyed: /revoke), `grant` (a grant's tokens revoked) and
 * `consent-grant` (a consent changed; announced by a Postgres trigger), `client` (trigger on the
 * client row) and `certificate` (trigger on the registry row). The two that no trigger sees — a
 * token or grant revoked in the short-lived store (Redis) — are published here by the store wrapper
 * (src/storage/revocation-announcing-store.ts), after this instance has forgotten them.
 */

/** Topics about what token facts hold; others (`signing-keys`) are not theirs. */
const KEY_OF_TOPIC: Partial<Record<InvalidationTopic, TokenFactsKey>> = {
  'access-token': 'token',
  grant: 'grant',
  'consent-grant': 'grant',
  client: 'client',
  certificate: 'certificate',
};

const TOPIC_OF_KEY: Record<'token' | 'grant' | 'client', InvalidationTopic> = { token: 'access-token', grant: 'grant', client: 'client' };

/** Subscribes the cache to the bus; returns the announcer the store wrappers call. */
export function connectTokenFacts(
  cache: TokenFactsCache,
  bus: InvalidationBus,
  logger: Logger,
): (kind: 'token' | 'grant' | 'client', id: string) => Promise<void> {
  bus.subscribe({
    invalidate: (topic, key) => {
      const kind = KEY_OF_TOPIC[topic];
      if (kind !== undefined) cache.forget(kind, key);
    },
    reset: () => cache.clear(),
  });
  return async (kind, id) => {
    cache.forget(kind, id);
    try {
      await bus.publish(TOPIC_OF_KEY[kind], id);
    } catch (err) {
      // The revocation itself stands; another instance may serve its kept facts until the bus resets it.
      logger.error({ err, event: 'gateway_check.announce_failed', kind }, 'announcing a revocation to other instances failed');
    }
  };
}

/*
 * Cross-instance cache invalidation. Every Moat instance keeps a few things in memory that the
 * request path would otherwise read from Postgres on every call (a client's metadata, the registry's
 * status of a certificate, the consent behind a grant, the customer a token is issued for). A change
 * made anywhere — on this instance, on another one, by the `moat` CLI against the database — must
 * reach every instance's memory:
 * Postgres triggers announce each change (migrations/20261206500000_cache_invalidation.sql) and
 * every instance listens. While an instance cannot hear those announcements (the listening
 * connection is down), its caches hold nothing and every read goes to the database.
 */

/**
 * What an announcement is about. The key is the client id, the certificate thumbprint, the grant id,
 * the customer id; for `access-token`, the id (jti) of a destroyed access token
 * (src/gateway-check/token-facts.ts); `signing-keys` (any change to the shared signing keys) has none
 * that matters.
 */
export const INVALIDATION_TOPICS = ['client', 'certificate', 'consent-grant', 'grant', 'customer', 'access-token', 'signing-keys'] as const;
export type InvalidationTopic = (typeof INVALIDATION_TOPICS)[number];

/** The Postgres channel the triggers and `publish` notify; the payload is `<topic>:<key>`. */
export const INVALIDATION_CHANNEL = 'moat_invalidate';

export interface InvalidationListener {
  /** What is stored under `key` changed: forget it. */
  invalidate(topic: InvalidationTopic, key: string): void;
  /** Announcements may have been missed (the subscription was lost or has just come back): forget everything. */
  reset(): void;
}

/**
 * The announcements of one deployment. The consumer (a cache) owns this interface; storage
 * implements it over Postgres LISTEN/NOTIFY (src/storage/sql/pg-invalidation-bus.ts) and, for a
 * single process, in memory (createLocalInvalidationBus below).
 */
export interface InvalidationBus {
  /**
   * Announces a change that no trigger sees (state outside Postgres): this instance's listeners hear
   * it before the promise resolves, every other instance's as soon as the announcement arrives.
   */
  publish(topic: InvalidationTopic, key: string): Promise<void>;
  /** Hears every announcement from now on, until the returned function is called. */
  subscribe(listener: InvalidationListener): () => void;
  /** True while announcements from other instances are being received; caches must not keep anything while false. */
  readonly live: boolean;
  close(): Promise<void>;
}

/** Parses a `<topic>:<key>` payload; undefined for anything else (a notification not meant for Moat). */
export function parseInvalidation(payload: string): { topic: InvalidationTopic; key: string } | undefined {
  const colon = payload.indexOf(':');
  if (colon <= 0) return undefined;
  const topic = payload.slice(0, colon);
  if (!(INVALIDATION_TOPICS as readonly string[]).includes(topic)) return undefined;
  return { topic: topic as InvalidationTopic, key: payload.slice(colon + 1) };
}

/** Listeners of one bus: what every implementation shares. */
export function createListenerSet() {
  const listeners = new Set<InvalidationListener>();
  return {
    add(listener: InvalidationListener): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    invalidate(topic: InvalidationTopic, key: string): void {
      for (const l of listeners) l.invalidate(topic, key);
    },
    reset(): void {
      for (const l of listeners) l.reset();
    },
  };
}

/**
 * One process and nobody else (the embedded database, or a test): every change is made here, so
 * every announcement is local and the bus is always live.
 */
export function createLocalInvalidationBus(): InvalidationBus {
  const listeners = createListenerSet();
  return {
    publish(topic, key) {
      listeners.invalidate(topic, key);
      return Promise.resolve();
    },
    subscribe: (listener) => listeners.add(listener),
    live: true,
    close: () => Promise.resolve(),
  };
}

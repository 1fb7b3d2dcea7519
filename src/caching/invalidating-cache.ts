import type { InvalidationBus, InvalidationTopic } from './invalidation.ts';

/*
 * A bounded in-process cache that forgets an entry when the bus announces its change, forgets
 * everything when announcements may have been missed, and keeps nothing while the bus is not live.
 *
 * Staleness: an entry changed elsewhere is forgotten when the announcement arrives (Postgres sends it
 * at commit; on loopback or a LAN, milliseconds), and is never served more than `maxAgeMs` after it
 * was read whatever happens to announcements — the bound that holds even for a connection that dies
 * silently. A change made through this instance is forgotten before the change's call returns (the
 * store wrappers call `invalidate`), so this instance never serves it stale.
 *
 * A read racing a change: a read that started before an announcement (or an `invalidate`) is
 * answered but not kept, since it may have read the value from before the change.
 *
 * Entries are kept in the order they were stored, not the order they were last used: each is served
 * for at most `maxAgeMs`, so the one stored longest ago is about the first to expire and the one
 * with the least left to give when the bound is full. An insert first drops the expired entries at
 * that end (at most four times per `maxAgeMs`, since a Map's deleted slots are skipped again by each
 * new walk until V8 compacts it), so a cache holds about what it can still serve, not up to
 * `maxEntries` dead ones (the consent cache filled with a soak's 1 s-old consents: bench/README.md,
 * 2026-12-07). A load that finishes late stores its entry behind younger ones; it is still never
 * served past `maxAgeMs`, and one already past it is not stored at all.
 */

export interface InvalidatingCache<V> {
  /** The cached value of `key`, or `load()`'s — kept only when nothing was announced meanwhile. */
  get(key: string, load: () => Promise<V>): Promise<V>;
  /** Forgets `key` on this instance (after a change made through it). */
  invalidate(key: string): void;
  clear(): void;
  readonly size: number;
  /** Stops listening to the bus. */
  close(): void;
}

export interface InvalidatingCacheOptions<V> {
  bus: InvalidationBus;
  topic: InvalidationTopic;
  /** The most entries kept; the one stored longest ago goes first. Every cache is bounded. */
  maxEntries: number;
  /** The longest an entry is served after it was read, announcements or not. */
  maxAgeMs: number;
  /** A private copy for each caller, so no caller can change what the next one gets. */
  copy?: (value: V) => V;
  /** Told of every read: answered from memory (`hit`) or by `load()` (`miss`), for the hit-rate metric. */
  onRead?: (result: 'hit' | 'miss') => void;
  /** Milliseconds on a clock that never steps back (the default is the monotonic performance.now()). */
  now?: () => number;
}

/**
 * The bound on staleness when announcements are lost without the connection noticing (a half-open
 * TCP connection): one second, the window the issue that introduced these caches promised for a
 * revocation made on another instance.
 */
export const DEFAULT_MAX_AGE_MS = 1000;

export function createInvalidatingCache<V>(options: InvalidatingCacheOptions<V>): InvalidatingCache<V> {
  const { bus, topic, maxEntries, maxAgeMs } = options;
  // Monotonic: a wall clock set back would serve entries past maxAgeMs and stall the expiry walk.
  const now = options.now ?? (() => performance.now());
  const copy = options.copy ?? ((v: V) => v);
  const onRead = options.onRead ?? (() => undefined);
  const entries = new Map<string, { value: V; readAt: number }>();
  // Bumped by every announcement and invalidation: a read that saw another generation is not kept.
  let generation = 0;

  const forget = (key: string) => {
    generation += 1;
    entries.delete(key);
  };
  const clear = () => {
    generation += 1;
    entries.clear();
  };
  // Map keeps insertion order, which here is about the order of reads: the expired ones are at the front.
  let walkedAt = Number.NEGATIVE_INFINITY;
  const dropExpired = (at: number) => {
    if (at - walkedAt < maxAgeMs / 4) return;
    walkedAt = at;
    for (const [key, entry] of entries) {
      if (at - entry.readAt < maxAgeMs) return;
      entries.delete(key);
    }
  };
  const unsubscribe = bus.subscribe({
    invalidate: (announced, key) => {
      if (announced === topic) forget(key);
    },
    reset: clear,
  });

  return {
    async get(key, load) {
      const hit = entries.get(key);
      if (hit !== undefined) {
        if (bus.live && now() - hit.readAt < maxAgeMs) {
          onRead('hit');
          return copy(hit.value);
        }
        entries.delete(key);
      }
      onRead('miss');
      const seen = generation;
      const readAt = now();
      const value = await load();
      const storedAt = now();
      if (seen === generation && bus.live && storedAt - readAt < maxAgeMs) {
        dropExpired(storedAt);
        // Two misses of one key at once: the later load's entry goes to the young end.
        entries.delete(key);
        entries.set(key, { value, readAt });
        if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
        return copy(value);
      }
      return value;
    },
    invalidate: forget,
    clear,
    get size() {
      return entries.size;
    },
    close: unsubscribe,
  };
}

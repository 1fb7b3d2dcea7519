import pg from 'pg';
import { createListenerSet, INVALIDATION_CHANNEL, parseInvalidation, type InvalidationBus } from '../../caching/invalidation.ts';

/*
 * The invalidation bus over Postgres LISTEN/NOTIFY: one dedicated connection per instance listens
 * on INVALIDATION_CHANNEL, where the triggers of migrations/20261206500000_cache_invalidation.sql
 * announce every change to a client, a certificate or a consent (at commit, whoever made it).
 *
 * A lost connection makes the bus not live at once: every cache empties and reads go to the
 * database. It reconnects with a growing delay; once LISTEN is back the caches empty again (what
 * changed meanwhile was not heard) and caching resumes.
 */

/** How the listening session shows in pg_stat_activity (operators, and the test that cuts it). */
export const INVALIDATION_APPLICATION_NAME = 'moat-invalidation';

/** Reconnection delays: quick at first, then every 5 s while Postgres stays away. */
const RECONNECT_DELAYS_MS = [100, 250, 500, 1000, 2000, 5000];

export interface PgInvalidationBusOptions {
  /** Hears of a lost or restored subscription (logs, metrics). */
  onState?: (live: boolean, err?: unknown) => void;
}

export async function createPgInvalidationBus(url: string, options: PgInvalidationBusOptions = {}): Promise<InvalidationBus> {
  const listeners = createListenerSet();
  let live = false;
  let closed = false;
  let client: pg.Client | undefined;
  let attempt = 0;
  let timer: NodeJS.Timeout | undefined;
  // One query at a time on the listening connection: pg queues a query sent while another runs, but
  // says that is deprecated and pg 9 removes it, and revocations on many requests publish at once.
  let publishing: Promise<unknown> = Promise.resolve();

  const lost = (err?: unknown) => {
    if (live) {
      live = false;
      listeners.reset();
      options.onState?.(false, err);
    }
    const current = client;
    client = undefined;
    current?.removeAllListeners();
    current?.on('error', () => {});
    void current?.end().catch(() => {});
    if (!closed && timer === undefined) {
      const delay = RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)]!;
      attempt += 1;
      timer = setTimeout(() => {
        timer = undefined;
        void connect().catch(lost);
      }, delay);
      timer.unref();
    }
  };

  const connect = async () => {
    // keepAlive: a peer that vanished without closing is noticed by TCP, not only by the 1 s cache bound.
    const next = new pg.Client({ connectionString: url, keepAlive: true, connectionTimeoutMillis: 2000, application_name: INVALIDATION_APPLICATION_NAME });
    next.on('error', lost);
    next.on('end', () => lost());
    next.on('notification', (message) => {
      if (message.channel !== INVALIDATION_CHANNEL || message.payload === undefined) return;
      const parsed = parseInvalidation(message.payload);
      if (parsed !== undefined) listeners.invalidate(parsed.topic, parsed.key);
    });
    client = next;
    await next.connect();
    await next.query(`LISTEN ${INVALIDATION_CHANNEL}`);
    if (closed) {
      await next.end();
      return;
    }
    attempt = 0;
    // Whatever changed while nobody listened was not heard.
    listeners.reset();
    live = true;
    options.onState?.(true);
  };

  try {
    await connect();
  } catch (err) {
    // Start without the subscription (caches off) rather than not at all; it is retried.
    lost(err);
  }

  return {
    async publish(topic, key) {
      listeners.invalidate(topic, key);
      const notifier = client;
      if (notifier === undefined || !live) return;
      const sent = publishing.then(() => notifier.query('SELECT pg_notify($1, $2)', [INVALIDATION_CHANNEL, `${topic}:${key}`]));
      publishing = sent.catch(() => {});
      await sent;
    },
    subscribe: (listener) => listeners.add(listener),
    get live() {
      return live;
    },
    async close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      const current = client;
      client = undefined;
      live = false;
      if (current !== undefined) {
        current.removeAllListeners();
        current.on('error', () => {});
        await current.end().catch(() => {});
      }
    },
  };
}

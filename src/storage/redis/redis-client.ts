import { type Command, Redis, type RedisOptions } from 'ioredis';
import type { StorageErrorListener } from '../../kernel/model-store.ts';
import { StorageUnavailableError } from '../../kernel/storage-unavailable.ts';

/*
 * The one Redis connection of an instance, shared by the model store, the rate and attempt counters,
 * the threat state and the call journal. It is on the request path, so a Redis that is gone or has
 * stopped answering must cost a request seconds, once, and never add up along the request.
 */

/** How long one command may go unanswered before the connection counts as dead. */
const COMMAND_TIMEOUT_MS = 5000;

const OPTIONS: RedisOptions = {
  lazyConnect: false,
  // Commands fail at once while the connection is down, instead of waiting in a queue for it.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  connectTimeout: 2000,
  commandTimeout: COMMAND_TIMEOUT_MS,
  // What was pending on a connection that closed is failed at once (below), not sent again on the
  // next one: its request was, or is being, answered 503, and a second send would run it twice. (The
  // first may still run: a stopped Redis executes what was written to it when it resumes.)
  autoResendUnfulfilledCommands: false,
  retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  // Not ioredis's enableAutoPipelining. With the connection dropped at the first timeout (below), a
  // batch waiting behind a stalled one no longer adds a timeout of its own, but on 2026-12-07 it made
  // client_credentials dearer, not cheaper: 0.604, 0.606, 0.755 ms of CPU per request without it and
  // 0.742, 0.726, 0.814 with it, interleaved (`npm run bench -- --only token-cc,introspect`).
};

/**
 * A Redis that stops answering without closing the connection (a stalled host, a paused VM, a long
 * fork) returns no error, only silence. Left alone, every command of every request then waits out its
 * own timeout, one after another: the rate counters' (which fall back to this instance's count), then
 * the model store's, then the call journal's, 15 s for one request. So the first command that times
 * out drops its connection, once; the commands sent after that fail at once (the offline queue is
 * off) until the reconnect finds Redis answering again.
 *
 * Two things keep that from hurting a healthy connection: a timeout drops only the connection its
 * command went out on (a late timer of the old one must not end the new one), and when a connection
 * closes, the commands still pending on it are failed then, instead of keeping their timers running
 * into the next connection's life (ioredis drops them unanswered when it does not send them again).
 */
class RequestPathRedis extends Redis {
  readonly #dropped = new WeakSet<object>();

  constructor(url: string, options: RedisOptions) {
    super(url, options);
    this.on('close', () => {
      const closed = new Error('Connection is closed.');
      for (const item of this.commandQueue.toArray()) item.command.reject(closed);
    });
  }

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    const sent = super.sendCommand(command, stream);
    const connection = this.stream;
    command.promise.catch((err: unknown) => {
      if (!(err instanceof Error) || err.message !== 'Command timed out') return;
      if (this.status !== 'ready' || this.stream !== connection || this.#dropped.has(connection)) return;
      this.#dropped.add(connection);
      this.disconnect(true);
    });
    return sent;
  }
}

/** A Redis client for the request path: commands fail fast during an outage; it reconnects in the background. */
export function createRedisClient(url: string, onUnavailable?: StorageErrorListener): Redis {
  const redis = new RequestPathRedis(url, OPTIONS);
  // Connection errors surface on commands (as StorageUnavailableError); an unhandled 'error' event
  // would crash the process. Counted, so an outage shows even when nothing calls Redis (every
  // user of this client, rate limits and threat state too, shares the connection).
  redis.on('error', () => onUnavailable?.('redis', 'connection'));
  return redis;
}

/** A client that is connected: start-up fails clearly when Redis is not there at all. */
export async function connectRedis(url: string, timeoutMs = 5000, onUnavailable?: StorageErrorListener): Promise<Redis> {
  const redis = createRedisClient(url, onUnavailable);
  if (redis.status === 'ready') return redis;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      redis.disconnect();
      reject(new StorageUnavailableError(`redis at ${new URL(url).host}`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
  return redis;
}

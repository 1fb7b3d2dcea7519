import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import type { StorageErrorListener, StorageOperation } from '../../kernel/model-store.ts';
import { StorageUnavailableError } from '../../kernel/storage-unavailable.ts';
import { createPgliteCluster, holdsPgliteCluster } from './pglite-cluster.ts';

/**
 * The SQL surface Moat's Postgres code needs, implemented over a `pg` pool and over PGlite (the
 * embedded default), so one store and one migration runner serve both.
 */
export interface SqlClient {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: T[]; rowCount: number }>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
  /** Runs `fn` in a transaction on one connection; rolls back if it throws. */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Errors that mean "the database is not there right now" rather than "this query is wrong". */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08006',
  '53300',
]);

/** A query of a transaction that had already failed or ended, never run; or a COMMIT that rolled back. */
export class TransactionEndedError extends Error {
  constructor(message = 'the transaction this query belongs to has failed or ended before its turn came') {
    super(message);
    this.name = 'TransactionEndedError';
  }
}

export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (e?.code !== undefined && UNAVAILABLE_CODES.has(e.code)) return true;
  const message = e?.message ?? '';
  // `Query read timeout` is pg's query_timeout (below): the server took the query and has not answered.
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end|Query read timeout/i.test(
    message,
  );
}

/**
 * A pg pool that fails fast: a request during an outage gets a 503, never a hang. Every call that
 * fails on an unavailable server is told to `onUnavailable`, here and only here.
 */
export function createPgSqlClient(url: string, options: { max?: number; onUnavailable?: StorageErrorListener } = {}): SqlClient {
  const mapError = (err: unknown, operation: StorageOperation): never => {
    if (!isUnavailable(err)) throw err;
    options.onUnavailable?.('postgres', operation);
    throw new StorageUnavailableError('postgres', { cause: err });
  };
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: 2000,
    idleTimeoutMillis: 30_000,
    // Protects the request path from a wedged server as well as from a dead one.
    query_timeout: 10_000,
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => options.onUnavailable?.('postgres', 'connection'));
  /**
   * A transaction's queries on its one connection. `settle` (before COMMIT) lets every query started
   * so far run; `abandon` (before ROLLBACK) refuses those still waiting and lets the one on the
   * connection finish.
   */
  const over = (client: pg.PoolClient): { tx: SqlClient; settle(): Promise<void>; abandon(options: { wait: boolean }): Promise<void> } => {
    // One connection runs one query at a time. A transaction's code may start several at once
    // (Promise.all over its writes); pg queues them itself but deprecates that, and pg 9 refuses
    // it, so they are queued here, in the order they were started.
    let previous: Promise<unknown> = Promise.resolve();
    // Once a query has failed, Postgres has aborted the transaction, and once it is over a query
    // still waiting its turn must not run at all: after the ROLLBACK it would be written outside the
    // transaction, or on a connection another request holds by then. Such queries are refused.
    let ended = false;
    const inTurn = <R>(run: () => Promise<R>): Promise<R> => {
      const runIfOpen = () => (ended ? Promise.reject(new TransactionEndedError()) : run());
      const turn = previous.then(runIfOpen, runIfOpen);
      previous = turn.catch(() => {
        ended = true;
      });
      return turn;
    };
    const tx: SqlClient = {
      query: async <T>(text: string, params?: unknown[]) => {
        try {
          const r = await inTurn(() => client.query(text, params));
          return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
        } catch (err) {
          return mapError(err, 'query');
        }
      },
      exec: async (script) => {
        try {
          await inTurn(() => client.query(script));
        } catch (err) {
          mapError(err, 'script');
        }
      },
      transaction: (fn) => fn(tx),
      close: async () => {},
    };
    return {
      tx,
      settle: async () => {
        // Queries the code started and did not wait for still belong to the transaction.
        for (let last = previous; ; last = previous) {
          await last;
          if (last === previous) break;
        }
        ended = true;
      },
      abandon: async ({ wait }) => {
        ended = true;
        // Unless the connection is to be destroyed (which fails what is on it), the query on it
        // finishes before the ROLLBACK.
        if (wait) await previous;
      },
    };
  };
  return {
    async query<T>(text: string, params?: unknown[]) {
      try {
        const r = await pool.query(text, params);
        return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
      } catch (err) {
        return mapError(err, 'query');
      }
    },
    async exec(script) {
      try {
        await pool.query(script);
      } catch (err) {
        mapError(err, 'script');
      }
    },
    async transaction(fn) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        return mapError(err, 'transaction');
      }
      let broken = false;
      // A checked-out client has no pool listener: if the server dies mid-transaction the client
      // emits 'error', and unheard that event would crash the process (the query rejects as well).
      const lost = () => {
        // Reported once, though pg emits twice (the server's FATAL message, then the socket's end).
        if (broken) return;
        broken = true;
        options.onUnavailable?.('postgres', 'connection');
      };
      client.on('error', lost);
      const queries = over(client);
      try {
        await client.query('BEGIN');
        const result = await fn(queries.tx);
        await queries.settle();
        // A transaction whose query failed (and whose code caught that) is rolled back by COMMIT.
        if ((await client.query('COMMIT')).command === 'ROLLBACK')
          throw new TransactionEndedError('a query of the transaction failed, so COMMIT rolled it back');
        return result;
      } catch (err) {
        broken ||= isUnavailable(err) || isUnavailable((err as { cause?: unknown }).cause);
        await queries.abandon({ wait: !broken });
        if (!broken)
          await client.query('ROLLBACK').catch(() => {
            broken = true;
          });
        // A query inside `fn` was counted already (it throws StorageUnavailableError); BEGIN and COMMIT are not.
        return mapError(err, 'transaction');
      } finally {
        // A broken client is destroyed and may still report its socket's end: keep listening then.
        if (!broken) client.off('error', lost);
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}

/**
 * Postgres's buffer cache inside PGlite's WebAssembly memory. Postgres's default (128MB) is sized for
 * a server; the embedded database holds one sandbox's data, and every buffer touched stays in the
 * process's RSS (issue 20: the embedded default under 350 MiB). Pages not cached are read through
 * PGlite's file system, as any Postgres reads past its cache.
 */
const PGLITE_SHARED_BUFFERS = '16MB';

/**
 * PGlite persisted under `dataDir`: real Postgres in this process. It has one connection, so
 * transactions are serialised here, and queries outside one wait for it. A directory without a
 * cluster gets one first, made in a child process (pglite-cluster.ts says why).
 */
export async function createPgliteSqlClient(dataDir: string): Promise<SqlClient> {
  mkdirSync(dataDir, { recursive: true });
  if (!holdsPgliteCluster(dataDir)) await createPgliteCluster(dataDir);
  const db = await PGlite.create(dataDir, { startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`] });
  let tail: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
  const raw = async <T>(text: string, params?: unknown[]) => {
    const r = await db.query<T>(text, params);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  };
  return {
    query: (text, params) => exclusive(() => raw(text, params)),
    exec: (script) =>
      exclusive(async () => {
        await db.exec(script);
      }),
    transaction: (fn) =>
      exclusive(() =>
        db.transaction(async (tx) => {
          const txClient: SqlClient = {
            query: async <T>(text: string, params?: unknown[]) => {
              const r = await tx.query<T>(text, params);
              return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
            },
            exec: async (script) => {
              await tx.exec(script);
            },
            transaction: (inner) => inner(txClient),
            close: async () => {},
          };
          return fn(txClient);
        }),
      ),
    close: () => exclusive(() => db.close()),
  };
}

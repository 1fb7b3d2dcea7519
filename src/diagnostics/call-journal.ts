import type { Redis } from 'ioredis';
import type { CallRecord } from './call-record.ts';

/*
 * Where call records are kept: short-lived (a day by default) and bounded. Each record is filed
 * under its interaction id (a TPP may reuse one for related calls, so a few per id), under the
 * certificate that was presented and under the client — the owners who may read it back. Redis
 * when configured, so every instance answers for calls any instance served; in memory otherwise.
 *
 * A call made by the client (with a certificate registered for it) and a call that only names the
 * client_id go to separate lists of their own size: anyone can send a client's id, and a flood of
 * such calls must not push the client's own calls out of its view.
 */

/** Records kept per interaction id: enough for a TPP that reuses one across a flow. */
const PER_INTERACTION = 10;

export interface CallOwners {
  thumbprints: readonly string[];
  clientIds: readonly string[];
}

export interface CallJournal {
  record(record: CallRecord): Promise<void>;
  /** Every kept call with this interaction id, newest first. */
  byInteractionId(interactionId: string): Promise<CallRecord[]>;
  /**
   * Newest first, up to `limit` each: `made`, the calls made with these certificates or by these
   * clients; `named`, the calls that only named one of these clients (another certificate, or none).
   */
  recent(owners: CallOwners, limit: number): Promise<RecentCalls>;
}

export interface RecentCalls {
  made: CallRecord[];
  named: CallRecord[];
}

interface JournalOptions {
  retentionSeconds: number;
  /** Calls kept per certificate and per client. */
  perOwner: number;
}

const keysOf = (record: CallRecord) => [
  `call:${record.interactionId}`,
  ...(record.certificate === undefined ? [] : [`cert:${record.certificate['x5t#S256']}`]),
  ...(record.clientId === undefined ? [] : [`${record.madeByClient === true ? 'client' : 'named'}:${record.clientId}`]),
];

const madeKeys = (owners: CallOwners) => [...owners.thumbprints.map((t) => `cert:${t}`), ...owners.clientIds.map((c) => `client:${c}`)];
const namedKeys = (owners: CallOwners) => owners.clientIds.map((c) => `named:${c}`);

/** Newest first, each call once (it is filed under its certificate and its client). */
function newestUnique(records: CallRecord[], limit: number): CallRecord[] {
  const seen = new Set<string>();
  return records
    .sort((a, b) => b.at.localeCompare(a.at))
    .filter((r) => !seen.has(r.requestId) && seen.add(r.requestId))
    .slice(0, limit);
}

/**
 * The owners' two lists from the lists under `keys`. A call made with the caller's certificate in
 * another client's name is in both; it is shown once, as made.
 */
async function recentFrom(owners: CallOwners, limit: number, read: (keys: string[]) => Promise<CallRecord[]>): Promise<RecentCalls> {
  const [madeRecords, namedRecords] = await Promise.all([read(madeKeys(owners)), read(namedKeys(owners))]);
  const made = newestUnique(madeRecords, limit);
  const shown = new Set(made.map((r) => r.requestId));
  return {
    made,
    named: newestUnique(
      namedRecords.filter((r) => !shown.has(r.requestId)),
      limit,
    ),
  };
}

export function createRedisCallJournal(redis: Redis, prefix: string, options: JournalOptions): CallJournal {
  const p = `${prefix}diag:`;
  const read = async (key: string, count: number) => (await redis.lrange(`${p}${key}`, 0, count - 1)).map((json) => JSON.parse(json) as CallRecord);
  return {
    async record(record) {
      const json = JSON.stringify(record);
      const multi = redis.multi();
      for (const key of keysOf(record)) {
        const cap = key.startsWith('call:') ? PER_INTERACTION : options.perOwner;
        multi
          .lpush(`${p}${key}`, json)
          .ltrim(`${p}${key}`, 0, cap - 1)
          .expire(`${p}${key}`, options.retentionSeconds);
      }
      await multi.exec();
    },
    byInteractionId: (interactionId) => read(`call:${interactionId}`, PER_INTERACTION),
    recent: (owners, limit) => recentFrom(owners, limit, async (keys) => (await Promise.all(keys.map((key) => read(key, limit)))).flat()),
  };
}

/** Keys kept in memory at most; the oldest go first (a sandbox runs a handful of TPPs). */
const MEMORY_KEYS = 10_000;

export function createMemoryCallJournal(options: JournalOptions, now: () => number = Date.now): CallJournal {
  const lists = new Map<string, { expires: number; records: CallRecord[] }>();
  const live = (key: string) => {
    const entry = lists.get(key);
    if (entry !== undefined && entry.expires <= now()) lists.delete(key);
    return entry !== undefined && entry.expires > now() ? entry.records : [];
  };
  return {
    async record(record) {
      for (const key of keysOf(record)) {
        const cap = key.startsWith('call:') ? PER_INTERACTION : options.perOwner;
        const records = [record, ...live(key)].slice(0, cap);
        // Re-inserted, so the Map's order is least recently written first.
        lists.delete(key);
        lists.set(key, { expires: now() + options.retentionSeconds * 1000, records });
      }
      for (const key of lists.keys()) {
        if (lists.size <= MEMORY_KEYS) break;
        lists.delete(key);
      }
    },
    byInteractionId: async (interactionId) => live(`call:${interactionId}`),
    recent: (owners, limit) => recentFrom(owners, limit, async (keys) => keys.flatMap((key) => live(key))),
  };
}

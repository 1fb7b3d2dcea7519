import type { CallRecord } from './call-record.ts';

/*
 * Where call records are kept: short-lived (a day by default) and bounded. Each record is filed
 * under its interaction id (a TPP may reuse one for related calls, so a few per id), under the
 * certificate that was presented and under the client — the owners who may read it back. Redis
 * when configured, so every instance answers for calls any instance served; in memory otherwise
 * (src/storage/redis/call-journal.ts, src/storage/embedded/call-journal.ts).
 *
 * A call made by the client (with a certificate registered for it) and a call that only names the
 * client_id go to separate lists of their own size: anyone can send a client's id, and a flood of
 * such calls must not push the client's own calls out of its view.
 */

/** Records kept per interaction id: enough for a TPP that reuses one across a flow. */
export const PER_INTERACTION = 10;

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

export interface JournalOptions {
  retentionSeconds: number;
  /** Calls kept per certificate and per client. */
  perOwner: number;
}

/** The lists a record is filed under: its interaction id's, its certificate's and its client's. */
export const keysOf = (record: CallRecord) => [
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
export async function recentFrom(owners: CallOwners, limit: number, read: (keys: string[]) => Promise<CallRecord[]>): Promise<RecentCalls> {
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

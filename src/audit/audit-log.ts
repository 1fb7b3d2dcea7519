import { createHash } from 'node:crypto';
import type { Logger } from '../observability/logger.ts';
import { StorageUnavailableError } from '../kernel/storage-unavailable.ts';

/*
 * The security audit log (Postgres `audit_event`): who did what to which TPP, client, customer or
 * certificate, when. Append-only and hash-chained, so tampering shows: each record's hash covers the
 * previous record's hash and its own canonical JSON, and `verify` recomputes the chain.
 */

export const AUDIT_EVENT_TYPES = [
  'client.registered',
  'client.updated',
  'client.deleted',
  'certificate.registered',
  'certificate.revoked',
  'certificate.retired',
  'consent.lodged',
  'consent.granted',
  'consent.narrowed',
  'consent.denied',
  'consent.revoked',
  'consent.expired',
  'consent.consumed',
  'token.issued',
  'token.revoked',
  'token.withdrawn',
  'code.given_back',
  'client.quarantined',
  'client.released',
  'factor.enrolled',
  'factor.removed',
  'factor.reset',
  'key.adopted',
  'key.generated',
  'key.staged',
  'key.scheduled',
  'key.activated',
  'key.retired',
  'key.removed',
  'admin.action',
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export interface AuditEvent {
  type: AuditEventType;
  actor: 'tpp' | 'customer' | 'operator' | 'system';
  actorId?: string;
  clientId?: string;
  orgId?: string;
  customerId?: string;
  /** What the event is about: a consent id, a certificate thumbprint, a grant id. */
  subject?: string;
  detail?: Record<string, unknown>;
}

export interface AuditRecord extends AuditEvent {
  seq: number;
  at: Date;
  prevHash: string;
  hash: string;
}

export interface AuditQuery {
  clientId?: string;
  orgId?: string;
  customerId?: string;
  type?: string;
  since?: Date;
  until?: Date;
  limit?: number;
}

export type ChainVerdict = { intact: true; records: number; head: string } | { intact: false; records: number; brokenAt: number; reason: string };

/** What the hash covers: every field of a record but its sequence number and hashes. */
export type AuditFields = Omit<AuditRecord, 'hash' | 'prevHash' | 'seq'>;

/**
 * Where the chain is kept (Postgres `audit_event`; src/storage/sql/audit-store.ts). The log decides
 * what to write and when; the store keeps the chain's order.
 */
export interface AuditStore {
  /**
   * Appends the records after the chain's head in the order given, each one's hash chained
   * (`chainHash`) to the one before; all of them or none, one appender at a time across every
   * instance. Throws StorageUnavailableError when the backend is away.
   */
  append(records: AuditFields[]): Promise<void>;
  /** Records matching the filter, in chain order. */
  query(filter: AuditQuery): Promise<AuditRecord[]>;
  /** At most `limit` records after sequence number `seq`, in chain order. */
  after(seq: number, limit: number): Promise<AuditRecord[]>;
}

export interface AuditLog {
  /**
   * Appends an event; resolves once it is written. Never throws: an audit failure is logged loudly,
   * not turned into a failed request.
   */
  record(event: AuditEvent): Promise<void>;
  /**
   * Resolves when every event recorded so far is written (at shutdown, before storage closes). With
   * `giveUpAfterMs`, what Postgres has still not taken by then is logged in full at error level (so
   * no record is lost without a trace) and dropped, so that a shutdown during an outage ends.
   */
  drain(options?: { giveUpAfterMs?: number }): Promise<void>;
  /**
   * Resolves at once while fewer than MAX_QUEUED records wait to be written; otherwise (Postgres is
   * down or far behind) once the queue is below that again. Requests that issue tokens wait on it,
   * so the queue stays bounded without dropping a record.
   */
  room(): Promise<void>;
  query(filter: AuditQuery): Promise<AuditRecord[]>;
  /** Walks the whole chain from the first record. */
  verify(): Promise<ChainVerdict>;
}

/** The hash of the (absent) record before the first one. */
export const GENESIS_HASH = '0'.repeat(64);
/** Events appended in one transaction at most (11 parameters each, far below Postgres' 65535). */
const MAX_BATCH = 500;
/**
 * Events waiting at most before `room()` holds new requests back: 20 full batches, a few MiB, and
 * at the token endpoint's pace several seconds of Postgres being away.
 */
export const MAX_QUEUED = 10_000;
/** While Postgres is unavailable the head batch is retried: quickly at first, then every 5 s. */
const RETRY_DELAYS_MS = [100, 250, 500, 1000, 2000, 5000];

/** JSON with object keys sorted at every level, so the hash does not depend on insertion order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value instanceof Date ? value.toISOString() : value);
}

export function chainHash(prevHash: string, record: AuditFields): string {
  return createHash('sha256')
    .update(prevHash)
    .update(canonicalJson({ ...record, at: record.at.toISOString() }))
    .digest('hex');
}

/** What the hash covers: every field of the record but its sequence number and hashes. */
function hashedFields(r: AuditRecord): AuditFields {
  const { seq: _seq, hash: _hash, prevHash: _prev, ...fields } = r;
  return { ...fields, detail: fields.detail ?? {} };
}

interface Pending {
  fields: AuditFields;
  written: () => void;
}

/**
 * Appends are batched (group commit): events recorded while an append runs, or in the same turn of
 * the event loop, go in together — one advisory lock, one read of the chain head, one multi-row
 * INSERT with the hashes chained in queue order. A token endpoint under load records an event per
 * token; one lock and five round trips each would serialise the whole deployment on the lock.
 */
export function createAuditLog(store: AuditStore, logger: Logger): AuditLog {
  let queue: Pending[] = [];
  let appending: Promise<void> | undefined;
  let giveUp = false;
  const waitingForRoom: (() => void)[] = [];

  /** Appends the batch; returns how many of its first events were handled (all, unless Postgres became unavailable). */
  const append = async (batch: Pending[]): Promise<number> => {
    try {
      await store.append(batch.map((p) => p.fields));
      for (const p of batch) p.written();
      return batch.length;
    } catch (err) {
      // Postgres away: nothing of the batch is written; it stays queued and is tried again.
      if (err instanceof StorageUnavailableError) return 0;
      if (batch.length > 1) {
        // One unwritable event must not take the others with it: halve until it stands alone.
        const half = Math.ceil(batch.length / 2);
        const first = await append(batch.slice(0, half));
        return first < half ? first : half + (await append(batch.slice(half)));
      }
      // The event itself cannot be stored (Postgres refuses a value in it): it goes to the log in full.
      logger.error(
        { err, event: 'audit.write_failed', auditType: batch[0]?.fields.type, auditRecord: batch[0]?.fields },
        'an audit record could not be written',
      );
      for (const p of batch) p.written();
      return batch.length;
    }
  };

  const lostAtShutdown = (pending: Pending[]) => {
    for (const p of pending) {
      logger.error(
        { event: 'audit.unwritten_at_shutdown', auditType: p.fields.type, auditRecord: p.fields },
        'an audit record could not be written before shutdown',
      );
      p.written();
    }
  };

  const pump = async (): Promise<void> => {
    // Let the rest of this turn's events join the first batch.
    await new Promise<void>((r) => setImmediate(r));
    let attempt = 0;
    while (queue.length > 0) {
      if (giveUp) {
        lostAtShutdown(queue.splice(0));
        break;
      }
      const batch = queue.slice(0, MAX_BATCH);
      const handled = await append(batch);
      queue = queue.slice(handled);
      if (queue.length < MAX_QUEUED) for (const wake of waitingForRoom.splice(0)) wake();
      if (handled < batch.length) {
        if (attempt === 0)
          logger.warn({ event: 'audit.waiting_for_storage', queued: queue.length }, 'Postgres is unavailable: audit records are queued until it is back');
        const delay = RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)]!;
        attempt += 1;
        await new Promise<void>((r) => setTimeout(r, delay));
      } else {
        attempt = 0;
      }
    }
    appending = undefined;
  };

  return {
    record(event) {
      return new Promise<void>((written) => {
        // Millisecond precision: what Postgres stores round-trips to the same ISO string.
        const fields = {
          at: new Date(Math.floor(Date.now())),
          type: event.type,
          actor: event.actor,
          ...(event.actorId === undefined ? {} : { actorId: event.actorId }),
          ...(event.clientId === undefined ? {} : { clientId: event.clientId }),
          ...(event.orgId === undefined ? {} : { orgId: event.orgId }),
          ...(event.customerId === undefined ? {} : { customerId: event.customerId }),
          ...(event.subject === undefined ? {} : { subject: event.subject }),
          detail: event.detail ?? {},
        };
        queue.push({ fields, written });
        appending ??= pump();
      });
    },

    async drain(options = {}) {
      const deadline =
        options.giveUpAfterMs === undefined
          ? undefined
          : setTimeout(() => {
              giveUp = true;
            }, options.giveUpAfterMs);
      try {
        while (appending !== undefined) await appending;
      } finally {
        if (deadline !== undefined) clearTimeout(deadline);
        giveUp = false;
      }
    },

    room() {
      if (queue.length < MAX_QUEUED) return Promise.resolve();
      return new Promise<void>((resolve) => waitingForRoom.push(resolve));
    },

    query(filter) {
      return store.query(filter);
    },

    async verify() {
      let prev = GENESIS_HASH;
      let records = 0;
      let after = 0;
      for (;;) {
        const page = await store.after(after, 1000);
        if (page.length === 0) return { intact: true, records, head: prev };
        for (const record of page) {
          if (record.prevHash !== prev)
            return { intact: false, records, brokenAt: record.seq, reason: 'prev_hash does not match the previous record (a record was removed or inserted)' };
          if (chainHash(prev, hashedFields(record)) !== record.hash)
            return { intact: false, records, brokenAt: record.seq, reason: 'the record does not match its hash (it was changed)' };
          prev = record.hash;
          records += 1;
          after = record.seq;
        }
      }
    },
  };
}

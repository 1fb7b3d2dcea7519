import { chainHash, GENESIS_HASH, type AuditEvent, type AuditEventType, type AuditFields, type AuditRecord, type AuditStore } from '../../audit/audit-log.ts';
import { containsNul } from './postgres-model-store.ts';
import type { SqlClient } from './sql-client.ts';

/** Serialises appends across every instance: the chain has one order. */
const APPEND_LOCK = 0x6d6f6174_61756474n; // "moataudt"

interface Row {
  seq: string | number;
  at: Date | string;
  type: AuditEventType;
  actor: AuditEvent['actor'];
  actor_id: string | null;
  client_id: string | null;
  org_id: string | null;
  customer_id: string | null;
  subject: string | null;
  detail: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

function toRecord(r: Row): AuditRecord {
  return {
    seq: Number(r.seq),
    at: new Date(r.at),
    type: r.type,
    actor: r.actor,
    ...(r.actor_id === null ? {} : { actorId: r.actor_id }),
    ...(r.client_id === null ? {} : { clientId: r.client_id }),
    ...(r.org_id === null ? {} : { orgId: r.org_id }),
    ...(r.customer_id === null ? {} : { customerId: r.customer_id }),
    ...(r.subject === null ? {} : { subject: r.subject }),
    detail: r.detail,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** The audit chain in the `audit_event` table: one advisory lock, one read of the head, one multi-row INSERT per append. */
export function createSqlAuditStore(sql: SqlClient): AuditStore {
  return {
    async append(records: AuditFields[]) {
      await sql.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [APPEND_LOCK.toString()]);
        const { rows } = await tx.query<{ hash: string }>('SELECT hash FROM audit_event ORDER BY seq DESC LIMIT 1');
        let prevHash = rows[0]?.hash ?? GENESIS_HASH;
        const values: string[] = [];
        const params: unknown[] = [];
        for (const fields of records) {
          const hash = chainHash(prevHash, fields);
          const at = params.length;
          values.push(`(${Array.from({ length: 11 }, (_, i) => `$${at + i + 1}`).join(', ')})`);
          params.push(
            fields.at,
            fields.type,
            fields.actor,
            fields.actorId ?? null,
            fields.clientId ?? null,
            fields.orgId ?? null,
            fields.customerId ?? null,
            fields.subject ?? null,
            JSON.stringify(fields.detail ?? {}),
            prevHash,
            hash,
          );
          prevHash = hash;
        }
        // One statement keeps the batch's order: seq is assigned row by row as listed.
        await tx.query(
          `INSERT INTO audit_event (at, type, actor, actor_id, client_id, org_id, customer_id, subject, detail, prev_hash, hash)
           VALUES ${values.join(', ')}`,
          params,
        );
      });
    },

    async query(filter) {
      const texts = [filter.clientId, filter.orgId, filter.customerId, filter.type].filter((v): v is string => v !== undefined);
      if (containsNul(...texts)) return [];
      const { rows } = await sql.query<Row>(
        `SELECT * FROM audit_event
         WHERE ($1::text IS NULL OR client_id = $1) AND ($2::text IS NULL OR org_id = $2) AND ($3::text IS NULL OR customer_id = $3)
           AND ($4::text IS NULL OR type = $4) AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6)
         ORDER BY seq LIMIT $7`,
        [
          filter.clientId ?? null,
          filter.orgId ?? null,
          filter.customerId ?? null,
          filter.type ?? null,
          filter.since ?? null,
          filter.until ?? null,
          Math.min(filter.limit ?? 1000, 10000),
        ],
      );
      return rows.map(toRecord);
    },

    async after(seq, limit) {
      const { rows } = await sql.query<Row>('SELECT * FROM audit_event WHERE seq > $1 ORDER BY seq LIMIT $2', [seq, limit]);
      return rows.map(toRecord);
    },
  };
}

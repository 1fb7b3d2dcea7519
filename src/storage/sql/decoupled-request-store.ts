import type { RequestedDetail } from '../../consents/authorization-details.ts';
import { containsNul } from './postgres-model-store.ts';
import type { SqlClient } from './sql-client.ts';
import type { DecoupledRequest, DecoupledRequestStore, DecoupledStatus } from '../../ciba/decoupled-request.ts';

interface Row {
  id: string;
  client_id: string;
  customer_id: string;
  scope: string;
  binding_message: string | null;
  purpose: string | null;
  requested: RequestedDetail | null;
  intent_id: string | null;
  consent_id: string;
  status: DecoupledStatus;
  created_at: Date | string;
  expires_at: Date | string;
  decided_at: Date | string | null;
}

const COLUMNS = 'id, client_id, customer_id, scope, binding_message, purpose, requested, intent_id, consent_id, status, created_at, expires_at, decided_at';

function toRequest(row: Row): DecoupledRequest {
  return {
    id: row.id,
    clientId: row.client_id,
    customerId: row.customer_id,
    scope: row.scope,
    ...(row.binding_message === null ? {} : { bindingMessage: row.binding_message }),
    ...(row.purpose === null ? {} : { purpose: row.purpose }),
    ...(row.requested === null ? {} : { requested: row.requested }),
    ...(row.intent_id === null ? {} : { intentId: row.intent_id }),
    consentId: row.consent_id,
    status: row.status,
    createdAt: new Date(row.created_at),
    expiresAt: new Date(row.expires_at),
    ...(row.decided_at === null ? {} : { decidedAt: new Date(row.decided_at) }),
  };
}

/** The bank app's inbox on Postgres (pg or the embedded PGlite). */
export function createSqlDecoupledRequestStore(sql: SqlClient): DecoupledRequestStore {
  return {
    async create(r) {
      await sql.query(
        `INSERT INTO decoupled_request (id, client_id, customer_id, scope, binding_message, purpose, requested, intent_id, consent_id, status, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)`,
        [
          r.id,
          r.clientId,
          r.customerId,
          r.scope,
          r.bindingMessage ?? null,
          r.purpose ?? null,
          r.requested === undefined ? null : JSON.stringify(r.requested),
          r.intentId ?? null,
          r.consentId,
          r.createdAt,
          r.expiresAt,
        ],
      );
    },
    async find(id) {
      // Postgres text cannot hold NUL: such an id names nothing (and must not become a 500).
      if (containsNul(id)) return undefined;
      const { rows } = await sql.query<Row>(`SELECT ${COLUMNS} FROM decoupled_request WHERE id = $1`, [id]);
      return rows[0] === undefined ? undefined : toRequest(rows[0]);
    },
    async listPending(customerId, now) {
      const { rows } = await sql.query<Row>(
        `SELECT ${COLUMNS} FROM decoupled_request WHERE customer_id = $1 AND status = 'pending' AND expires_at > $2 ORDER BY created_at, id`,
        [customerId, now],
      );
      return rows.map(toRequest);
    },
    async decide(id, status, at) {
      const { rowCount } = await sql.query("UPDATE decoupled_request SET status = $2, decided_at = $3 WHERE id = $1 AND status = 'pending'", [id, status, at]);
      return rowCount === 1;
    },
  };
}

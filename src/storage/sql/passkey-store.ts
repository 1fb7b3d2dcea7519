import { randomBytes } from 'node:crypto';
import { containsNul } from './postgres-model-store.ts';
import type { SqlClient } from './sql-client.ts';
import { PasskeyAlreadyEnrolled, type Passkey, type PasskeyStore } from '../../passkeys/passkey-store.ts';

interface PasskeyRow {
  id: string;
  customer_id: string;
  public_key: Uint8Array;
  sign_count: string | number;
  transports: string[];
  device_type: Passkey['deviceType'];
  backed_up: boolean;
  aaguid: string;
  name: string;
  created_at: Date | string;
  last_used_at: Date | string | null;
}

const COLUMNS = 'id, customer_id, public_key, sign_count, transports, device_type, backed_up, aaguid, name, created_at, last_used_at';
const UNIQUE_VIOLATION = '23505';

function toPasskey(row: PasskeyRow): Passkey {
  return {
    id: row.id,
    customerId: row.customer_id,
    publicKey: new Uint8Array(row.public_key),
    signCount: Number(row.sign_count),
    transports: row.transports,
    deviceType: row.device_type,
    backedUp: row.backed_up,
    aaguid: row.aaguid,
    name: row.name,
    createdAt: new Date(row.created_at),
    ...(row.last_used_at === null ? {} : { lastUsedAt: new Date(row.last_used_at) }),
  };
}

/** The passkey store on Postgres (pg or the embedded PGlite). */
export function createSqlPasskeyStore(sql: SqlClient): PasskeyStore {
  return {
    async userHandle(customerId) {
      // Two first enrolments racing: one insert wins, both read the winner's handle.
      await sql.query('INSERT INTO passkey_user_handle (customer_id, user_handle) VALUES ($1, $2) ON CONFLICT (customer_id) DO NOTHING', [
        customerId,
        randomBytes(32).toString('base64url'),
      ]);
      const { rows } = await sql.query<{ user_handle: string }>('SELECT user_handle FROM passkey_user_handle WHERE customer_id = $1', [customerId]);
      return rows[0]!.user_handle;
    },
    async find(credentialId) {
      // Postgres text cannot hold NUL: such an id names nothing (and must not become a 500).
      if (containsNul(credentialId)) return undefined;
      const { rows } = await sql.query<PasskeyRow>(`SELECT ${COLUMNS} FROM passkey_credential WHERE id = $1`, [credentialId]);
      return rows[0] === undefined ? undefined : toPasskey(rows[0]);
    },
    async listForCustomer(customerId) {
      if (containsNul(customerId)) return [];
      const { rows } = await sql.query<PasskeyRow>(`SELECT ${COLUMNS} FROM passkey_credential WHERE customer_id = $1 ORDER BY created_at, id`, [customerId]);
      return rows.map(toPasskey);
    },
    async add(p) {
      try {
        await sql.query(
          `INSERT INTO passkey_credential (id, customer_id, public_key, sign_count, transports, device_type, backed_up, aaguid, name)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          [p.id, p.customerId, Buffer.from(p.publicKey), p.signCount, p.transports, p.deviceType, p.backedUp, p.aaguid, p.name],
        );
      } catch (err) {
        if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw new PasskeyAlreadyEnrolled();
        throw err;
      }
    },
    async recordUse(credentialId, signCount, backedUp, at) {
      // WebAuthn L2 §6.1.1: a counter that does not grow signals a clone; 0 means the authenticator keeps none.
      const { rowCount } = await sql.query(
        `UPDATE passkey_credential SET sign_count = $2, backed_up = $3, last_used_at = $4
         WHERE id = $1 AND (($2::bigint = 0 AND sign_count = 0) OR sign_count < $2::bigint)`,
        [credentialId, signCount, backedUp, at],
      );
      return rowCount === 1;
    },
    async remove(customerId, credentialId) {
      if (containsNul(customerId, credentialId)) return false;
      const { rowCount } = await sql.query('DELETE FROM passkey_credential WHERE customer_id = $1 AND id = $2', [customerId, credentialId]);
      return rowCount === 1;
    },
    async removeAll(customerId) {
      if (containsNul(customerId)) return 0;
      const { rowCount } = await sql.query('DELETE FROM passkey_credential WHERE customer_id = $1', [customerId]);
      return rowCount;
    },
  };
}

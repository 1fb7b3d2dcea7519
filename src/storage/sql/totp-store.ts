import { containsNul } from './postgres-model-store.ts';
import type { SqlClient } from './sql-client.ts';
import type { StoredTotp, TotpStore } from '../../sca/totp-store.ts';

/** TOTP factors on Postgres (pg or the embedded PGlite): tables customer_totp and customer_totp_used_step. */
export function createSqlTotpStore(sql: SqlClient): TotpStore {
  return {
    async find(customerId) {
      if (containsNul(customerId)) return undefined;
      const { rows } = await sql.query<{ secret_encrypted: string; created_at: Date | string; confirmed_at: Date | string | null }>(
        'SELECT secret_encrypted, created_at, confirmed_at FROM customer_totp WHERE customer_id = $1',
        [customerId],
      );
      const row = rows[0];
      if (row === undefined) return undefined;
      const stored: StoredTotp = { sealedSecret: row.secret_encrypted, createdAt: new Date(row.created_at) };
      return row.confirmed_at === null ? stored : { ...stored, confirmedAt: new Date(row.confirmed_at) };
    },
    async savePending(customerId, sealedSecret) {
      // A confirmed factor is never replaced by a pending one: removal comes first (see the dashboard).
      await sql.query(
        `INSERT INTO customer_totp (customer_id, secret_encrypted) VALUES ($1, $2)
         ON CONFLICT (customer_id) DO UPDATE SET secret_encrypted = EXCLUDED.secret_encrypted, created_at = now()
         WHERE customer_totp.confirmed_at IS NULL`,
        [customerId, sealedSecret],
      );
    },
    async confirm(customerId, at) {
      const { rows } = await sql.query<{ customer_id: string }>(
        'UPDATE customer_totp SET confirmed_at = $2 WHERE customer_id = $1 AND confirmed_at IS NULL RETURNING customer_id',
        [customerId, at],
      );
      return rows.length === 1;
    },
    async remove(customerId) {
      if (containsNul(customerId)) return false;
      const { rows } = await sql.query<{ customer_id: string }>('DELETE FROM customer_totp WHERE customer_id = $1 RETURNING customer_id', [customerId]);
      return rows.length === 1;
    },
    async claimTimeStep(customerId, timeStep) {
      // The primary key decides: of two requests with the same code, one inserts and one does not.
      const { rows } = await sql.query<{ time_step: string }>(
        `INSERT INTO customer_totp_used_step (customer_id, time_step) VALUES ($1, $2)
         ON CONFLICT (customer_id, time_step) DO NOTHING RETURNING time_step`,
        [customerId, timeStep],
      );
      // Steps older than a day can never match again (the window is at most two steps).
      await sql.query('DELETE FROM customer_totp_used_step WHERE customer_id = $1 AND time_step < $2', [customerId, timeStep - 2880]);
      return rows.length === 1;
    },
    async customerExists(customerId) {
      if (containsNul(customerId)) return false;
      // A customer of the bank's own sign-in (customers.source: oidc) is known once the IdP vouched for them.
      const { rows } = await sql.query('SELECT 1 FROM customer WHERE id = $1 UNION ALL SELECT 1 FROM federated_customer WHERE id = $1', [customerId]);
      return rows.length > 0;
    },
  };
}

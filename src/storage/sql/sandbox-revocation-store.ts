import type { SandboxRevocationStore } from '../../sandbox/revocation-services.ts';
import type { SqlClient } from './sql-client.ts';

export function createSqlSandboxRevocationStore(sql: SqlClient): SandboxRevocationStore {
  return {
    async revoked() {
      const { rows } = await sql.query<{ serial: string; revoked_at: Date | string }>('SELECT serial, revoked_at FROM sandbox_revoked_certificate');
      return new Map(rows.map((r) => [r.serial, new Date(r.revoked_at)]));
    },

    async revoke(serial, reason) {
      await sql.query('INSERT INTO sandbox_revoked_certificate (serial, reason) VALUES ($1, $2) ON CONFLICT DO NOTHING', [serial, reason]);
    },
  };
}

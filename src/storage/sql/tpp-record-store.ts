import type { TppRecordStore } from '../../registration/tpp-records.ts';
import type { SqlClient } from './sql-client.ts';

export function createSqlTppRecordStore(sql: SqlClient): TppRecordStore {
  return {
    async saveOrganisation(org) {
      await sql.query(
        `INSERT INTO tpp_organisation (org_id, name, directory_issuer, status)
         VALUES ($1, $2, $3, 'Active')
         ON CONFLICT (org_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()`,
        [org.orgId, org.name, org.directoryIssuer],
      );
    },

    async linkClient(link) {
      await sql.query(
        `INSERT INTO client_tpp (client_id, org_id, software_id, transport_cert_thumbprint)
         VALUES ($1, $2, $3, $4) ON CONFLICT (client_id) DO NOTHING`,
        [link.clientId, link.orgId, link.softwareId, link.transportThumbprint],
      );
    },

    async registeredTppOf(clientId) {
      const { rows } = await sql.query<{ org_id: string; software_id: string }>('SELECT org_id, software_id FROM client_tpp WHERE client_id = $1', [clientId]);
      return rows[0] === undefined ? undefined : { orgId: rows[0].org_id, softwareId: rows[0].software_id };
    },
  };
}

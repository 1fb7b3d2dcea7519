import { containsNul } from './postgres-model-store.ts';
import type { SqlClient } from './sql-client.ts';
import type { Customer, FederatedCustomerDirectory } from '../../customers/customer-directory.ts';

/** The federated customers (customers.source: oidc) in the `federated_customer` table. */
export function createSqlFederatedCustomerDirectory(sql: SqlClient): FederatedCustomerDirectory {
  return {
    authenticate: () => Promise.resolve(undefined),
    async findById(id) {
      if (containsNul(id)) return undefined;
      const { rows } = await sql.query<Customer>('SELECT id, name FROM federated_customer WHERE id = $1', [id]);
      return rows[0];
    },
    async record(customer, issuer) {
      await sql.query(
        `INSERT INTO federated_customer (id, issuer, name) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, issuer = EXCLUDED.issuer, last_seen_at = now()`,
        [customer.id, issuer, customer.name],
      );
    },
  };
}

import { containsNul } from '../storage/sql/postgres-model-store.ts';
import type { SqlClient } from '../storage/sql/sql-client.ts';
import type { Customer, CustomerDirectory } from './customer-directory.ts';

/**
 * The customers of the bank's OpenID Provider (customers.source: oidc), as Moat remembers them
 * between sign-ins. They never sign in with a password here: `authenticate` refuses every attempt.
 */
export interface FederatedCustomerDirectory extends CustomerDirectory {
  /** Records a customer the IdP vouched for: created on first sign-in, name and last seen refreshed after. */
  record(customer: Customer, issuer: string): Promise<void>;
}

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

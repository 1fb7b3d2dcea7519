import type { AccountReference } from '../../kernel/account-reference.ts';
import { SANDBOX_ACCOUNTS, type AccountDirectory } from '../../customers/account-directory.ts';
import type { SqlClient } from './sql-client.ts';

interface AccountRow {
  id: string;
  nickname: string;
  account_type: string;
  currency: string;
  scheme_name: AccountReference['schemeName'];
  identification: string;
}

/** The customers' accounts in the `customer_account` table (the database source, and the sandbox's demo accounts). */
export function createSqlAccountDirectory(sql: SqlClient): AccountDirectory {
  return {
    async listForCustomer(customerId) {
      const { rows } = await sql.query<AccountRow>(
        'SELECT id, nickname, account_type, currency, scheme_name, identification FROM customer_account WHERE customer_id = $1 ORDER BY id',
        [customerId],
      );
      return rows.map((r) => ({
        id: r.id,
        nickname: r.nickname,
        accountType: r.account_type,
        currency: r.currency,
        schemeName: r.scheme_name,
        identification: r.identification,
      }));
    },
    // The table holds no balances: an account of the customer's in the payment's currency can pay,
    // and the bank's payment system judges the funds when the payment is made.
    async canPay(customerId, accountId, amount) {
      const { rows } = await sql.query<{ currency: string }>('SELECT currency FROM customer_account WHERE customer_id = $1 AND id = $2', [
        customerId,
        accountId,
      ]);
      return rows[0]?.currency === amount.currency;
    },
  };
}

export async function seedSandboxAccounts(sql: SqlClient): Promise<void> {
  for (const a of SANDBOX_ACCOUNTS) {
    await sql.query(
      `INSERT INTO customer_account (id, customer_id, nickname, account_type, currency, scheme_name, identification)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
      [a.id, a.customerId, a.nickname, a.accountType, a.currency, a.schemeName, a.identification],
    );
  }
}

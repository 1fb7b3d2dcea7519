import { DomainError } from '../kernel/domain-error.ts';
import type { SqlClient } from '../storage/sql/sql-client.ts';
import type { AccountReference } from '../kernel/account-reference.ts';

/**
 * The customer's accounts, offered on the consent screen. The sandbox keeps demo accounts in
 * Postgres; a bank implements this over its core banking system.
 */
export interface CustomerAccount {
  id: string;
  nickname: string;
  accountType: string;
  currency: string;
  schemeName: AccountReference['schemeName'];
  identification: string;
}

/** Who is asking: answers given during one interaction are reused for the rest of it. */
export interface AccountLookup {
  interactionId?: string;
}

/** A payment amount, as authorization_details and the payment intents carry it. */
export interface PaymentAmount {
  amount: string;
  currency: string;
}

/**
 * Where the customer's accounts come from: the `customer_account` table (`accounts.source:
 * database`) or the bank's account service (`http`, and the sandbox's own, src/accounts).
 */
export interface AccountDirectory {
  listForCustomer(customerId: string, lookup?: AccountLookup): Promise<CustomerAccount[]>;
  /** Whether the account can pay the amount now; false when it is not the customer's. */
  canPay(customerId: string, accountId: string, amount: PaymentAmount, lookup?: AccountLookup): Promise<boolean>;
}

/** Why the accounts could not be had: each a failure of the account service, not of the request. */
export type AccountsUnavailableReason = 'timeout' | 'connection_failed' | 'service_error' | 'malformed_answer' | 'unexpected_status' | 'circuit_open';

/**
 * The account directory cannot answer now. The customer sees a page saying so, with the
 * interaction left open to try again; an API answers 503.
 */
export class AccountsUnavailable extends DomainError {
  readonly reason: AccountsUnavailableReason;
  constructor(reason: AccountsUnavailableReason, message: string, options?: { cause?: unknown }) {
    // The message names the service and what failed: for the log; the client learns only that it is down.
    super('unavailable', message, {
      ...(options?.cause === undefined ? {} : { cause: options.cause }),
      description: 'the account directory is unavailable; try again shortly',
    });
    this.name = 'AccountsUnavailable';
    this.reason = reason;
  }
}

interface AccountRow {
  id: string;
  nickname: string;
  account_type: string;
  currency: string;
  scheme_name: AccountReference['schemeName'];
  identification: string;
}

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

/** The last four characters, as banks show account numbers on screen. */
export function maskedIdentification(identification: string): string {
  return `••••${identification.slice(-4)}`;
}

/** Whether a TPP's account reference names this account. */
export function sameAccount(account: CustomerAccount, ref: AccountReference): boolean {
  return account.schemeName === ref.schemeName && account.identification === ref.identification.replace(/\s/g, '');
}

/** Sandbox demo accounts (sort code + account number, 14 digits). */
export const SANDBOX_ACCOUNTS: readonly (CustomerAccount & { customerId: string })[] = [
  {
    id: 'acc-alice-current',
    customerId: 'cust-alice',
    nickname: 'Everyday current account',
    accountType: 'Personal current account',
    currency: 'GBP',
    schemeName: 'UK.OBIE.SortCodeAccountNumber',
    identification: '40001712345678',
  },
  {
    id: 'acc-alice-savings',
    customerId: 'cust-alice',
    nickname: 'Rainy day saver',
    accountType: 'Savings account',
    currency: 'GBP',
    schemeName: 'UK.OBIE.SortCodeAccountNumber',
    identification: '40001787654321',
  },
  {
    id: 'acc-alice-euro',
    customerId: 'cust-alice',
    nickname: 'Euro account',
    accountType: 'Foreign currency account',
    currency: 'EUR',
    schemeName: 'UK.OBIE.IBAN',
    identification: 'GB33MOAT40001711223344',
  },
  {
    id: 'acc-bob-current',
    customerId: 'cust-bob',
    nickname: 'Current account',
    accountType: 'Personal current account',
    currency: 'GBP',
    schemeName: 'UK.OBIE.SortCodeAccountNumber',
    identification: '40001722334455',
  },
];

export async function seedSandboxAccounts(sql: SqlClient): Promise<void> {
  for (const a of SANDBOX_ACCOUNTS) {
    await sql.query(
      `INSERT INTO customer_account (id, customer_id, nickname, account_type, currency, scheme_name, identification)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
      [a.id, a.customerId, a.nickname, a.accountType, a.currency, a.schemeName, a.identification],
    );
  }
}

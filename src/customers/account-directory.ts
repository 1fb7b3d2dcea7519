import { DomainError } from '../kernel/domain-error.ts';
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

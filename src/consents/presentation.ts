import { maskedIdentification, type CustomerAccount } from '../customers/account-directory.ts';
import { groupsOf, type AccountReference, type Permission, type GrantedDetail, type RequestedDetail } from './authorization-details.ts';
import type { Consent } from './consent.ts';

/*
 * Consents in plain language, for the consent screen and the dashboard: permission groups instead
 * of codes, amounts in the customer's locale, dates a person reads, account numbers masked.
 */

const DATE = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });

export function formatDate(date: Date | string | undefined): string | undefined {
  if (date === undefined) return undefined;
  return DATE.format(typeof date === 'string' ? new Date(date) : date);
}

export function formatAmount(amount: { amount: string; currency: string }): string {
  try {
    return new Intl.NumberFormat('en-GB', { style: 'currency', currency: amount.currency }).format(Number(amount.amount));
  } catch {
    return `${amount.amount} ${amount.currency}`;
  }
}

export function describeAccountReference(ref: AccountReference): string {
  if (ref.schemeName === 'UK.OBIE.SortCodeAccountNumber') {
    const id = ref.identification;
    return `sort code ${id.slice(0, 2)}-${id.slice(2, 4)}-${id.slice(4, 6)}, account ${id.slice(6)}`;
  }
  return `IBAN ${ref.identification.replace(/(.{4})/g, '$1 ').trim()}`;
}

export function describeAccount(account: CustomerAccount): { id: string; label: string; detail: string } {
  return { id: account.id, label: account.nickname, detail: `${account.accountType} · ${account.currency} · ${maskedIdentification(account.identification)}` };
}

/** Each permission code in the words of the OBIE Customer Experience Guidelines' data clusters. */
const PERMISSION_WORDS: Record<Permission, string> = {
  ReadAccountsBasic: 'Account name, number and sort code',
  ReadAccountsDetail: 'Account name, number, sort code and the account holder\'s name',
  ReadBalances: 'Your balance',
  ReadPAN: 'Your card number',
  ReadBeneficiariesBasic: 'Names of the people and companies you pay',
  ReadBeneficiariesDetail: 'Names and account details of the people and companies you pay',
  ReadDirectDebits: 'Your direct debits',
  ReadStandingOrdersBasic: 'Your standing orders',
  ReadStandingOrdersDetail: 'Your standing orders, with the payees\' account details',
  ReadScheduledPaymentsBasic: 'Payments you have scheduled',
  ReadScheduledPaymentsDetail: 'Payments you have scheduled, with the payees\' account details',
  ReadTransactionsBasic: 'Your transactions: amounts and dates',
  ReadTransactionsDetail: 'Your transactions: amounts, dates, descriptions and the other party',
  ReadTransactionsCredits: 'Money coming in',
  ReadTransactionsDebits: 'Money going out',
  ReadStatementsBasic: 'Your statements',
  ReadStatementsDetail: 'Your statements, with their details',
  ReadProducts: 'Your account\'s features, fees, charges and interest',
  ReadOffers: 'Offers on your account',
  ReadParty: 'The account holder\'s name, address, phone number and email address',
  ReadPartyPSU: 'Your name, address, phone number and email address',
};

export interface DetailView {
  kind: 'account_access' | 'domestic_payment';
  /** Each group with the individual permissions asked for in it, in words. */
  groups?: { key: string; title: string; explains: string; includes: string[] }[];
  until?: string;
  transactionsFrom?: string;
  transactionsTo?: string;
  payment?: { amount: string; payee: string; payeeAccount: string; reference?: string };
}

export function describeDetail(detail: RequestedDetail | GrantedDetail): DetailView {
  if (detail.type === 'account_information') {
    return {
      kind: 'account_access',
      groups: groupsOf(detail.permissions).map(({ key, title, explains, permissions }) => ({
        key, title, explains, includes: permissions.filter((p) => detail.permissions.includes(p)).map((p) => PERMISSION_WORDS[p]),
      })),
      ...(detail.expirationDateTime === undefined ? {} : { until: formatDate(detail.expirationDateTime)! }),
      ...(detail.transactionFromDateTime === undefined ? {} : { transactionsFrom: formatDate(detail.transactionFromDateTime)! }),
      ...(detail.transactionToDateTime === undefined ? {} : { transactionsTo: formatDate(detail.transactionToDateTime)! }),
    };
  }
  const reference = detail.remittanceInformation?.reference ?? detail.remittanceInformation?.unstructured;
  return {
    kind: 'domestic_payment',
    payment: {
      amount: formatAmount(detail.instructedAmount),
      payee: detail.creditorName,
      payeeAccount: describeAccountReference(detail.creditorAccount),
      ...(reference === undefined ? {} : { reference }),
    },
  };
}

const STATUS_WORDS: Record<Consent['status'], string> = {
  AwaitingAuthorisation: 'Waiting for you',
  Authorised: 'Active',
  Rejected: 'Refused',
  Revoked: 'Stopped',
  Expired: 'Expired',
  Consumed: 'Payment made',
};

export function statusWords(status: Consent['status']): string {
  return STATUS_WORDS[status];
}

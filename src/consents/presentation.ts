import { maskedIdentification, type CustomerAccount } from '../customers/account-directory.ts';
import { groupsOf, type AccountReference, type Permission, type GrantedDetail, type RequestedDetail } from './authorization-details.ts';

/*
 * Consents in plain language, for the consent screen and the dashboard: permission groups instead
 * of codes, amounts in the customer's locale, dates a person reads, account numbers masked.
 */

/** The bank's default formatting locale; pages pass the customer's (views/locales, messages.ts intlLocale). */
const DEFAULT_LOCALE = 'en-GB';

/**
 * Dates and times are said in the customer's locale and in the bank's time zone (branding.timeZone,
 * an IANA zone; UTC by default): the day a consent ends or a payment is made is the bank's day, not
 * the server's.
 */
export function formatDate(date: Date | string | undefined, locale = DEFAULT_LOCALE, timeZone = 'UTC'): string | undefined {
  if (date === undefined) return undefined;
  return new Intl.DateTimeFormat(locale, { day: 'numeric', month: 'long', year: 'numeric', timeZone }).format(typeof date === 'string' ? new Date(date) : date);
}

/** A moment with its time, in the locale and the bank's time zone, naming the zone. */
export function formatDateTime(date: Date, locale = DEFAULT_LOCALE, timeZone = 'UTC'): string {
  return new Intl.DateTimeFormat(locale, {
    day: 'numeric',
    month: 'long',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    timeZone,
    timeZoneName: 'short',
  }).format(date);
}

export function formatAmount(amount: { amount: string; currency: string }, locale = DEFAULT_LOCALE): string {
  try {
    return new Intl.NumberFormat(locale, { style: 'currency', currency: amount.currency }).format(Number(amount.amount));
  } catch {
    return `${amount.amount} ${amount.currency}`;
  }
}

/** An account number as the customer pages say it: a catalogue key (views/locales account.*) and its values. */
export interface AccountWords {
  key: 'account.sortCode' | 'account.iban';
  params: Record<string, string>;
}

export function describeAccountReference(ref: AccountReference): AccountWords {
  if (ref.schemeName === 'UK.OBIE.SortCodeAccountNumber') {
    const id = ref.identification;
    return { key: 'account.sortCode', params: { sortCode: `${id.slice(0, 2)}-${id.slice(2, 4)}-${id.slice(4, 6)}`, account: id.slice(6) } };
  }
  return { key: 'account.iban', params: { iban: ref.identification.replace(/(.{4})/g, '$1 ').trim() } };
}

export function describeAccount(account: CustomerAccount): { id: string; label: string; detail: string } {
  return { id: account.id, label: account.nickname, detail: `${account.accountType} · ${account.currency} · ${maskedIdentification(account.identification)}` };
}

export interface DetailView {
  kind: 'account_access' | 'domestic_payment';
  /** Each group with the individual permissions asked for in it (pages name them from views/locales). */
  groups?: { key: string; title: string; explains: string; includes: Permission[] }[];
  until?: string;
  transactionsFrom?: string;
  transactionsTo?: string;
  payment?: { amount: string; payee: string; payeeAccount: AccountWords; reference?: string };
}

export function describeDetail(detail: RequestedDetail | GrantedDetail, locale = DEFAULT_LOCALE, timeZone = 'UTC'): DetailView {
  if (detail.type === 'account_information') {
    return {
      kind: 'account_access',
      groups: groupsOf(detail.permissions).map(({ key, title, explains, permissions }) => ({
        key,
        title,
        explains,
        includes: permissions.filter((p) => detail.permissions.includes(p)),
      })),
      ...(detail.expirationDateTime === undefined ? {} : { until: formatDate(detail.expirationDateTime, locale, timeZone)! }),
      ...(detail.transactionFromDateTime === undefined ? {} : { transactionsFrom: formatDate(detail.transactionFromDateTime, locale, timeZone)! }),
      ...(detail.transactionToDateTime === undefined ? {} : { transactionsTo: formatDate(detail.transactionToDateTime, locale, timeZone)! }),
    };
  }
  const reference = detail.remittanceInformation?.reference ?? detail.remittanceInformation?.unstructured;
  return {
    kind: 'domestic_payment',
    payment: {
      amount: formatAmount(detail.instructedAmount, locale),
      payee: detail.creditorName,
      payeeAccount: describeAccountReference(detail.creditorAccount),
      ...(reference === undefined ? {} : { reference }),
    },
  };
}

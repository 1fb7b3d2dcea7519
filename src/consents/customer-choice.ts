import { sameAccount, type AccountDirectory, type AccountLookup, type CustomerAccount } from '../customers/account-directory.ts';
import {
  ACCOUNTS_SCOPE,
  ACCOUNTS_SCOPE_PERMISSIONS,
  PERMISSION_GROUPS,
  type AccountInformationDetail,
  permissionsInGroups,
  type GrantDecision,
  type GrantedAccount,
  type RequestedDetail,
} from './authorization-details.ts';

/*
 * What a customer may choose when authorising, and what their choice grants: the same rules on the
 * consent page (interactions/routes.ts) and in the bank app of a decoupled request (src/ciba).
 */

/** What the TPP asked for, as far as the customer's choice is concerned. */
export interface ChoiceRequest {
  scope: string;
  detail?: RequestedDetail;
}

/**
 * Account access asked with the accounts scope alone, as the questions the consent screen asks:
 * the accounts scope's permissions, for the bank's configured time (consents.scopeAccessDays).
 */
export function scopeAccessRequest(now: Date, days: number): AccountInformationDetail {
  return {
    type: 'account_information',
    permissions: [...ACCOUNTS_SCOPE_PERMISSIONS],
    expirationDateTime: new Date(now.getTime() + days * 86_400_000).toISOString(),
  };
}

/** A choice the customer can correct (the message is theirs to read; pages word it by `code` in their language). */
export class ChoiceInvalid extends Error {
  readonly code: 'unknown_account' | 'choose_one' | 'choose_account' | 'keep_group';
  constructor(message: string, code: ChoiceInvalid['code']) {
    super(message);
    this.code = code;
  }
}

/** Account access asked for with the accounts scope alone (no intent, no authorization_details). */
export function asksAccountsByScope(request: ChoiceRequest): boolean {
  return request.detail === undefined && request.scope.split(' ').includes(ACCOUNTS_SCOPE);
}

/** The accounts a request may use, and (for a payment) the customer's own accounts left out and why. */
export interface AccountChoice {
  offered: CustomerAccount[];
  leftOut: { account: CustomerAccount; reason: 'currency' | 'cannot_pay' }[];
}

/**
 * The customer's accounts this request may use: all, or those the TPP named; for a payment, those
 * in its currency that the account directory says can pay it. The accounts left out of a payment
 * come with the reason, so the page can say why (OBIE CEG: the customer is told, not left guessing).
 */
export async function accountChoice(accounts: AccountDirectory, customerId: string, request: ChoiceRequest, lookup: AccountLookup): Promise<AccountChoice> {
  const { detail } = request;
  if (detail === undefined) return { offered: asksAccountsByScope(request) ? await accounts.listForCustomer(customerId, lookup) : [], leftOut: [] };
  const own = await accounts.listForCustomer(customerId, lookup);
  const named = detail.type === 'account_information' ? detail.accounts : detail.debtorAccount === undefined ? undefined : [detail.debtorAccount];
  const nameMatches = own.filter((a) => named === undefined || named.some((ref) => sameAccount(a, ref)));
  if (detail.type !== 'payment_initiation') return { offered: nameMatches, leftOut: [] };
  const { currency } = detail.instructedAmount;
  const inCurrency = nameMatches.filter((a) => a.currency === currency);
  const payable = await Promise.all(inCurrency.map((a) => accounts.canPay(customerId, a.id, detail.instructedAmount, lookup)));
  return {
    offered: inCurrency.filter((_, i) => payable[i]),
    leftOut: [
      ...nameMatches.filter((a) => a.currency !== currency).map((account) => ({ account, reason: 'currency' as const })),
      ...inCurrency.filter((_, i) => !payable[i]).map((account) => ({ account, reason: 'cannot_pay' as const })),
    ],
  };
}

/** The accounts this request may use (accountChoice without the reasons). */
export async function offeredAccounts(
  accounts: AccountDirectory,
  customerId: string,
  request: ChoiceRequest,
  lookup: AccountLookup,
): Promise<CustomerAccount[]> {
  return (await accountChoice(accounts, customerId, request, lookup)).offered;
}

/**
 * What the customer granted: the request narrowed to the chosen accounts and, when `keptGroups` is
 * given (the customer chose explicitly), to those permission groups.
 */
export function grantedDetail(requested: RequestedDetail, offered: CustomerAccount[], chosenIds: string[], keptGroups?: string[]): GrantDecision {
  const unknown = chosenIds.filter((id) => !offered.some((a) => a.id === id));
  if (unknown.length > 0) throw new ChoiceInvalid('Choose from the accounts listed.', 'unknown_account');
  const chosen: GrantedAccount[] = offered
    .filter((a) => chosenIds.includes(a.id))
    .map((a) => ({ accountId: a.id, schemeName: a.schemeName, identification: a.identification }));
  if (requested.type === 'payment_initiation') {
    if (chosen.length !== 1) throw new ChoiceInvalid('Choose the one account to pay from.', 'choose_one');
    return { ...requested, debtorAccount: chosen[0]! };
  }
  if (chosen.length === 0) throw new ChoiceInvalid('Choose at least one account to share.', 'choose_account');
  let permissions = requested.permissions;
  if (keptGroups !== undefined) {
    const kept = keptGroups.filter((g) => PERMISSION_GROUPS.some((known) => known.key === g));
    permissions = permissionsInGroups(requested.permissions, kept);
    if (permissions.length === 0) throw new ChoiceInvalid("Keep at least one kind of information to share, or choose Don't share.", 'keep_group');
  }
  const { accounts: _requestedAccounts, ...rest } = requested;
  return { ...rest, permissions, accounts: chosen };
}

import { z } from 'zod';
import { ACCOUNT_SCHEMES, accountReference, type AccountReference } from '../kernel/account-reference.ts';
import { unstorableText } from '../http/storable-text.ts';

/*
 * RFC 9396 authorization details for open banking: the two types Moat understands, each with a
 * schema. Intent consents lodged through the consent API are stored in the same shapes, so the
 * consent screen, the token response and introspection speak one language whatever the TPP used.
 * Field names follow RFC 9396's own payment_initiation example (camelCase); permission codes are
 * UK Open Banking's, which every other ecosystem maps onto.
 */

export const ACCOUNT_INFORMATION = 'account_information';
export const PAYMENT_INITIATION = 'payment_initiation';
export const AUTHORIZATION_DETAILS_TYPES = [ACCOUNT_INFORMATION, PAYMENT_INITIATION] as const;

/** UK OB Read/Write API v3.1 account-access permission codes. */
export const PERMISSIONS = [
  'ReadAccountsBasic',
  'ReadAccountsDetail',
  'ReadBalances',
  'ReadPAN',
  'ReadBeneficiariesBasic',
  'ReadBeneficiariesDetail',
  'ReadDirectDebits',
  'ReadStandingOrdersBasic',
  'ReadStandingOrdersDetail',
  'ReadScheduledPaymentsBasic',
  'ReadScheduledPaymentsDetail',
  'ReadTransactionsBasic',
  'ReadTransactionsDetail',
  'ReadTransactionsCredits',
  'ReadTransactionsDebits',
  'ReadStatementsBasic',
  'ReadStatementsDetail',
  'ReadProducts',
  'ReadOffers',
  'ReadParty',
  'ReadPartyPSU',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/**
 * Permission groups as the customer sees them: the OBIE Customer Experience Guidelines' data
 * clusters, in plain language. A customer grants or refuses a whole group.
 */
export const PERMISSION_GROUPS = [
  {
    key: 'account-details',
    title: 'Your account details',
    explains: 'Account names, numbers, type and balances.',
    permissions: ['ReadAccountsBasic', 'ReadAccountsDetail', 'ReadBalances', 'ReadPAN'],
  },
  {
    key: 'regular-payments',
    title: 'Your regular payments',
    explains: 'Payees, direct debits, standing orders and scheduled payments.',
    permissions: [
      'ReadBeneficiariesBasic',
      'ReadBeneficiariesDetail',
      'ReadDirectDebits',
      'ReadStandingOrdersBasic',
      'ReadStandingOrdersDetail',
      'ReadScheduledPaymentsBasic',
      'ReadScheduledPaymentsDetail',
    ],
  },
  {
    key: 'transactions',
    title: 'Your account transactions',
    explains: 'Money in and money out, with amounts, dates and descriptions.',
    permissions: ['ReadTransactionsBasic', 'ReadTransactionsDetail', 'ReadTransactionsCredits', 'ReadTransactionsDebits'],
  },
  {
    key: 'statements',
    title: 'Your statements',
    explains: 'Statements and the details on them.',
    permissions: ['ReadStatementsBasic', 'ReadStatementsDetail'],
  },
  {
    key: 'features',
    title: 'Your account features and benefits',
    explains: 'Product details, fees, charges, interest and offers.',
    permissions: ['ReadProducts', 'ReadOffers'],
  },
  {
    key: 'contact',
    title: 'Your contact and party details',
    explains: 'Your name, address, phone number and email address.',
    permissions: ['ReadParty', 'ReadPartyPSU'],
  },
] as const satisfies readonly { key: string; title: string; explains: string; permissions: readonly Permission[] }[];
export type PermissionGroupKey = (typeof PERMISSION_GROUPS)[number]['key'];

/** The scope that asks for account access by scopes alone, without an intent or authorization_details. */
export const ACCOUNTS_SCOPE = 'accounts';

/**
 * What a consent asked for with the accounts scope alone grants, recorded in the same shape as
 * authorization_details: the chosen accounts, their details and balances (the "Your account
 * details" group without card numbers), which is what the sandbox API's /accounts shows.
 */
export const ACCOUNTS_SCOPE_PERMISSIONS: readonly Permission[] = ['ReadAccountsBasic', 'ReadAccountsDetail', 'ReadBalances'];

export { ACCOUNT_SCHEMES, type AccountReference };

/** A granted account: the TPP-facing identification plus the bank's account id for its APIs. */
const grantedAccount = accountReference.and(z.object({ accountId: z.string().min(1) }));
export type GrantedAccount = z.infer<typeof grantedAccount>;

const dateTime = z.iso.datetime({ offset: true, error: 'expected an ISO 8601 date-time with a time zone, like 2027-01-31T00:00:00Z' });

/** RFC 9396 §2.2 common field every type may carry. */
const locations = z.array(z.url()).optional();

const accountInformationRequest = z
  .strictObject({
    type: z.literal(ACCOUNT_INFORMATION),
    locations,
    permissions: z
      .array(z.enum(PERMISSIONS, { error: 'unknown permission code' }))
      .min(1, 'at least one permission is needed')
      .refine((p) => new Set(p).size === p.length, 'a permission is listed twice'),
    accounts: z.array(accountReference).min(1).max(50).optional(),
    expirationDateTime: dateTime.optional(),
    transactionFromDateTime: dateTime.optional(),
    transactionToDateTime: dateTime.optional(),
  })
  .superRefine((d, ctx) => {
    const has = (p: Permission) => d.permissions.includes(p);
    // UK OB v3.1 consent rules: transaction detail needs a direction, and a direction needs detail.
    const detail = has('ReadTransactionsBasic') || has('ReadTransactionsDetail');
    const direction = has('ReadTransactionsCredits') || has('ReadTransactionsDebits');
    if (detail !== direction) {
      ctx.addIssue({
        code: 'custom',
        path: ['permissions'],
        message: 'ReadTransactionsBasic/Detail and ReadTransactionsCredits/Debits must be asked for together',
      });
    }
    if (d.expirationDateTime !== undefined && Date.parse(d.expirationDateTime) <= Date.now()) {
      ctx.addIssue({ code: 'custom', path: ['expirationDateTime'], message: 'the expiry is in the past' });
    }
    if (
      d.transactionFromDateTime !== undefined &&
      d.transactionToDateTime !== undefined &&
      Date.parse(d.transactionFromDateTime) > Date.parse(d.transactionToDateTime)
    ) {
      ctx.addIssue({ code: 'custom', path: ['transactionFromDateTime'], message: 'the transaction range starts after it ends' });
    }
  });

const amount = z
  .string()
  .regex(/^\d{1,13}(\.\d{1,5})?$/, 'expected a decimal amount like 10.00')
  .refine((a) => Number(a) > 0, 'the amount must be more than zero');

const paymentInitiationRequest = z.strictObject({
  type: z.literal(PAYMENT_INITIATION),
  locations,
  instructionIdentification: z.string().min(1).max(35).optional(),
  endToEndIdentification: z.string().min(1).max(35).optional(),
  instructedAmount: z.strictObject({
    amount,
    currency: z.string().regex(/^[A-Z]{3}$/, 'expected an ISO 4217 currency code like GBP'),
  }),
  creditorName: z.string().min(1).max(140),
  creditorAccount: accountReference,
  debtorAccount: accountReference.optional(),
  remittanceInformation: z
    .strictObject({
      reference: z.string().min(1).max(35).optional(),
      unstructured: z.string().min(1).max(140).optional(),
    })
    .optional(),
});

export type AccountInformationDetail = z.infer<typeof accountInformationRequest>;
export type PaymentInitiationDetail = z.infer<typeof paymentInitiationRequest>;
export type RequestedDetail = AccountInformationDetail | PaymentInitiationDetail;

/** What a grant carries: the request, narrowed by the customer, with the consent and accounts. */
export type GrantedAccountInformation = Omit<AccountInformationDetail, 'accounts'> & { consentId: string; accounts: GrantedAccount[] };
export type GrantedPaymentInitiation = Omit<PaymentInitiationDetail, 'debtorAccount'> & { consentId: string; debtorAccount: GrantedAccount };
export type GrantedDetail = GrantedAccountInformation | GrantedPaymentInitiation;
/** The customer's decision before the consent id is attached. */
export type GrantDecision = Omit<GrantedAccountInformation, 'consentId'> | Omit<GrantedPaymentInitiation, 'consentId'>;

const requestSchema = z.discriminatedUnion('type', [accountInformationRequest, paymentInitiationRequest]);

/** A detail that failed its schema; `message` names the field and what was expected. */
export class AuthorizationDetailsInvalid extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthorizationDetailsInvalid';
  }
}

/** Validates one requested detail; the `label` prefixes the field path in the message. */
export function parseRequestedDetail(detail: unknown, label: string): RequestedDetail {
  // Stored as Postgres jsonb. The edges refuse what it cannot hold (storable-input.ts, read-body.ts);
  // a detail from anywhere else gets the same check.
  const unstorable = unstorableText(detail, label);
  if (unstorable !== undefined) throw new AuthorizationDetailsInvalid(unstorable);
  const result = requestSchema.safeParse(detail);
  if (result.success) return result.data;
  throw new AuthorizationDetailsInvalid(describeIssues(result.error, label));
}

export function describeIssues(error: z.ZodError, label: string): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => {
      const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
      return `${label}${path}: ${issue.message}`;
    })
    .join('; ');
}

/** The groups a set of permissions touches, in display order. */
export function groupsOf(permissions: readonly Permission[]): (typeof PERMISSION_GROUPS)[number][] {
  return PERMISSION_GROUPS.filter((g) => g.permissions.some((p) => permissions.includes(p)));
}

/** The requested permissions that fall in the chosen groups. */
export function permissionsInGroups(permissions: readonly Permission[], groups: readonly string[]): Permission[] {
  const allowed = new Set<Permission>(PERMISSION_GROUPS.filter((g) => groups.includes(g.key)).flatMap((g) => [...g.permissions]));
  return permissions.filter((p) => allowed.has(p));
}

/** Roles a TPP must hold (from its SSA or certificate) to ask for each type. */
export const ROLE_FOR_TYPE: Record<RequestedDetail['type'], string> = {
  [ACCOUNT_INFORMATION]: 'AISP',
  [PAYMENT_INITIATION]: 'PISP',
};

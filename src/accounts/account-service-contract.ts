import { z } from 'zod';
import { ACCOUNT_SCHEMES } from '../kernel/account-reference.ts';

/*
 * The contract a bank implements once so Moat can list a customer's accounts and ask whether one
 * can pay: two idempotent GETs, JSON answers, mutual TLS. These schemas are what Moat validates
 * every answer with, and docs/account-service.openapi.json is generated from them
 * (`npm run openapi:accounts`), so the document a bank reads is the check Moat applies. Fields the
 * contract does not name are ignored (a bank's service may say more), and never reach Moat's pages.
 */

/** The contract's version, in the OpenAPI document and the paths' documentation. */
export const ACCOUNT_SERVICE_CONTRACT_VERSION = '1.0.0';

/** ISO 4217 alphabetic code. */
const currency = z
  .string()
  .regex(/^[A-Z]{3}$/)
  .describe('ISO 4217 currency code, like GBP');

const accountFields = {
  id: z.string().min(1).max(128).describe("The bank's own id of the account: what Moat records on the consent and passes back to the bank's APIs"),
  nickname: z.string().min(1).max(70).describe('The name the customer knows the account by, shown on the consent page'),
  type: z.string().min(1).max(70).describe('The kind of account, in words for the customer: "Personal current account"'),
  currency,
};

/*
 * The identification's form depends on its scheme, as in a TPP's account reference
 * (src/consents/authorization-details.ts): an account Moat shows must be one a TPP can name.
 */
export const contractAccountSchema = z.discriminatedUnion(
  'schemeName',
  [
    z.object({
      ...accountFields,
      schemeName: z.literal('UK.OBIE.SortCodeAccountNumber').describe('UK Open Banking scheme name: sort code and account number'),
      identification: z
        .string()
        .regex(/^\d{14}$/, 'a sort code and account number is 14 digits')
        .describe('Sort code and account number, 14 digits without spaces'),
    }),
    z.object({
      ...accountFields,
      schemeName: z.literal('UK.OBIE.IBAN').describe('UK Open Banking scheme name: IBAN'),
      identification: z
        .string()
        .regex(/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/, 'an IBAN is two letters, two check digits and up to 30 letters or digits, without spaces')
        .describe('An IBAN without spaces'),
    }),
  ],
  { error: `expected one of ${ACCOUNT_SCHEMES.join(', ')}` },
);
export type ContractAccount = z.infer<typeof contractAccountSchema>;

/** GET /customers/{customerId}/accounts → 200. An unknown customer has no accounts: an empty list. */
export const accountListSchema = z
  .object({
    accounts: z.array(contractAccountSchema).max(500),
  })
  .describe("The customer's accounts that may be offered on a consent page; an unknown customer has none");
export type AccountList = z.infer<typeof accountListSchema>;

/** The query of GET /customers/{customerId}/accounts/{accountId}/can-pay. */
export const canPayQuerySchema = z.object({
  amount: z
    .string()
    .regex(/^\d{1,13}(\.\d{1,5})?$/)
    .describe('The payment amount, a decimal like 42.50'),
  currency,
});
export type CanPayQuery = z.infer<typeof canPayQuerySchema>;

/** GET …/can-pay → 200; 404 when the account is not the customer's. */
export const canPaySchema = z.object({
  canPay: z.boolean().describe('Whether this account can pay the amount now (available funds, limits and blocks as the bank judges them)'),
});
export type CanPay = z.infer<typeof canPaySchema>;

/** Path templates, shared by Moat's client, the sandbox's service and the OpenAPI document. */
export const ACCOUNT_SERVICE_PATHS = {
  accounts: '/customers/{customerId}/accounts',
  canPay: '/customers/{customerId}/accounts/{accountId}/can-pay',
} as const;

/** A path template filled in, each segment percent-encoded. */
export function contractPath(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? ''));
}

/** Where an answer broke the contract: each field's path and what was expected, never its value. */
export function contractViolations(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.reduce<string>(
      (at, segment) => (typeof segment === 'number' ? `${at}[${segment}]` : at === '' ? String(segment) : `${at}.${String(segment)}`),
      '',
    );
    if (issue.code === 'unrecognized_keys')
      return `${path === '' ? '' : `${path}: `}unexpected field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
    return `${path === '' ? '(the answer)' : path}: ${issue.message}`;
  });
}

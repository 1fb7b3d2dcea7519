import { z } from 'zod';

/*
 * The bank notification interface: how a bank's own app plugs into decoupled authorisation. Moat
 * POSTs a `BankAppNotification` to the bank's configured endpoint (mTLS) when a TPP asks for a
 * customer; the bank's app authenticates the customer strongly, lets them choose, and POSTs a
 * `BankAppDecision` to the callback the notification names, presenting its client certificate.
 * docs/bank-app.openapi.json is written from these schemas (npm run openapi:bank-app).
 */

export const BANK_APP_CONTRACT_VERSION = '1.0.0';
export const BANK_APP_CALLBACK_PREFIX = '/bank-app/requests';

export const bankAppNotificationSchema = z.strictObject({
  /** The request's id (the TPP's auth_req_id); the callback path names it. */
  request_id: z.string().min(1),
  /** Moat's subject identifier of the customer, as the bank's customer directory knows them. */
  customer_id: z.string().min(1),
  client: z.strictObject({ client_id: z.string().min(1), client_name: z.string().min(1) }),
  scope: z.string(),
  /** CIBA Core §7.1: to show the customer, who checks it matches what the TPP shows. */
  binding_message: z.string().optional(),
  /** Why the TPP asks, in its words (OpenID Connect for Identity Assurance 1.0 `purpose`, 3–300 characters): to show the customer, as text. */
  purpose: z.string().optional(),
  /** The RFC 9396 detail asked (or the lodged intent's), as Moat's consent page shows it. */
  authorization_details: z.array(z.record(z.string(), z.unknown())).optional(),
  /** The accounts the customer may choose from for this request. */
  accounts: z.array(z.strictObject({ account_id: z.string().min(1), label: z.string() })),
  /** ISO 8601: after this the request can no longer be decided. */
  expires_at: z.string(),
  /** Where the bank app posts the decision (an absolute https URL on Moat). */
  callback: z.string(),
});
export type BankAppNotification = z.infer<typeof bankAppNotificationSchema>;

/** RFC 8176 methods the bank's app used; Moat counts categories from them (src/sca/authentication.ts). */
export const BANK_APP_METHODS = ['pwd', 'pin', 'otp', 'hwk', 'swk', 'user', 'fpt', 'face'] as const;

export const bankAppDecisionSchema = z.strictObject({
  /** Must be the customer the notification named. */
  customer_id: z.string().min(1),
  decision: z.enum(['approve', 'deny']),
  /** approve: the chosen accounts (default: every account offered; a payment: the first). */
  accounts: z.array(z.string().min(1)).max(100).optional(),
  /** approve: the permission groups kept, when the customer narrowed them. */
  permission_groups: z.array(z.string().min(1)).max(20).optional(),
  /** approve: how the customer authenticated in the app, just now. Approving needs SCA: two categories. */
  authentication: z.strictObject({ methods: z.array(z.enum(BANK_APP_METHODS)).min(1).max(8) }).optional(),
});
export type BankAppDecision = z.infer<typeof bankAppDecisionSchema>;

export const bankAppDecisionResultSchema = z.strictObject({
  request_id: z.string(),
  decision: z.enum(['approved', 'denied']),
  consent_id: z.string().optional(),
});

export const bankAppErrorSchema = z.strictObject({
  error: z.enum(['invalid_request', 'unauthorized_client', 'not_found', 'expired', 'already_decided', 'sca_required', 'choice_invalid']),
  error_description: z.string(),
});

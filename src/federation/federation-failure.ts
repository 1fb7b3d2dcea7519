/*
 * Why a sign-in at the bank's OpenID Provider did not give Moat a customer. A closed set: it labels
 * the operator's metric (moat_upstream_idp_failures_total{kind}) and the `federation.failed` log
 * line, and decides what the customer and the TPP are told.
 */

export const FEDERATION_FAILURE_KINDS = [
  /** The IdP could not be reached: connection refused, DNS, TLS. */
  'unreachable',
  /** The IdP did not answer within customers.oidc.timeoutMs. */
  'timeout',
  /** The IdP answered with an error (an OAuth error, a 5xx, a body that is not what the spec says). */
  'error_response',
  /** The IdP's metadata is unusable (its issuer differs, an endpoint is missing). */
  'bad_metadata',
  /** The authorization response names another issuer (RFC 9207 §2.4: a mix-up). */
  'wrong_issuer',
  /** The ID token's nonce is not the one sent (OIDC Core §3.1.3.7 step 11: a replayed or injected token). */
  'wrong_nonce',
  /** The callback's state is unknown, used before, or not this browser's (RFC 6749 §10.12: CSRF). */
  'unknown_state',
  /** The ID token is not acceptable: signature, audience, expiry, auth_time, or the customer id claim missing. */
  'invalid_id_token',
  /** The customer declined, or the IdP refused them (access_denied, login_required, …). */
  'customer_refused',
] as const;

export type FederationFailureKind = (typeof FEDERATION_FAILURE_KINDS)[number];

/** A failed upstream sign-in, with its kind; what went wrong in detail is in `cause`, for the log only. */
export class FederationFailure extends Error {
  readonly kind: FederationFailureKind;
  constructor(kind: FederationFailureKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FederationFailure';
    this.kind = kind;
  }

  /**
   * What the TPP gets when the interaction ends on this failure (RFC 6749 §4.1.2.1): the customer's
   * own refusal is access_denied; anything the IdP or the network caused is temporarily_unavailable.
   */
  get tppError(): 'access_denied' | 'temporarily_unavailable' {
    return this.kind === 'customer_refused' ? 'access_denied' : 'temporarily_unavailable';
  }
}

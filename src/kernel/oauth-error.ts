/**
 * An error Moat's own endpoints answer with (RFC 6749 §5.2 / RFC 7591 §3.2.2 shape). Protocol
 * errors inside oidc-provider use its own classes; both render as `{ error, error_description }`.
 * Internals go in `cause` and the log, never the body.
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  /** The bank app's callback called without the bank app's certificate (ciba/bank-app-interface.ts). */
  | 'unauthorized_client'
  | 'invalid_client_metadata'
  | 'invalid_redirect_uri'
  | 'invalid_software_statement'
  | 'unapproved_software_statement'
  | 'access_denied'
  | 'not_found'
  | 'temporarily_unavailable'
  | 'server_error'
  /** FAPI Grant Management §7: no such grant for the calling client. */
  | 'invalid_grant_id'
  /** The admin listener's own refusals of a request not meant for it (admin-request-guard.ts). */
  | 'misdirected_request'
  | 'cross_origin_request'
  | 'unsupported_media_type'
  /** Why the admin listener refuses a caller's credentials (admin/operator-authentication.ts). */
  | OperatorRefusalCode;

/** Why an operator's (or a gateway's) credentials are refused: each a 401. */
export type OperatorRefusalCode =
  | 'invalid_token'
  | 'certificate_required'
  | 'certificate_untrusted'
  | 'certificate_expired'
  | 'certificate_not_yet_valid'
  | 'certificate_not_for_client_auth'
  | 'certificate_revoked'
  | 'certificate_status_unknown'
  | 'subject_not_allowed';

const STATUS: Record<OAuthErrorCode, number> = {
  invalid_request: 400,
  invalid_client: 401,
  // Answered like invalid_client (RFC 6749 §5.2): the caller did not authenticate as the one client allowed.
  unauthorized_client: 401,
  invalid_client_metadata: 400,
  invalid_redirect_uri: 400,
  invalid_software_statement: 400,
  unapproved_software_statement: 400,
  access_denied: 403,
  not_found: 404,
  temporarily_unavailable: 503,
  server_error: 500,
  invalid_grant_id: 404,
  // RFC 9110 §15.5.20: a request whose Host this server does not answer for.
  misdirected_request: 421,
  cross_origin_request: 403,
  unsupported_media_type: 415,
  invalid_token: 401,
  certificate_required: 401,
  certificate_untrusted: 401,
  certificate_expired: 401,
  certificate_not_yet_valid: 401,
  certificate_not_for_client_auth: 401,
  certificate_revoked: 401,
  certificate_status_unknown: 401,
  subject_not_allowed: 401,
};

export class OAuthError extends Error {
  readonly code: OAuthErrorCode;
  readonly status: number;
  readonly description: string;
  constructor(code: OAuthErrorCode, description: string, options?: { cause?: unknown }) {
    super(`${code}: ${description}`, options);
    this.name = 'OAuthError';
    this.code = code;
    this.status = STATUS[code];
    this.description = description;
  }
}

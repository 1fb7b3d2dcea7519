/**
 * An error Moat's own endpoints answer with (RFC 6749 §5.2 / RFC 7591 §3.2.2 shape). Protocol
 * errors inside oidc-provider use its own classes; both render as `{ error, error_description }`.
 * Internals go in `cause` and the log, never the body.
 */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_client_metadata'
  | 'invalid_redirect_uri'
  | 'invalid_software_statement'
  | 'unapproved_software_statement'
  | 'access_denied'
  | 'not_found'
  | 'temporarily_unavailable'
  | 'server_error';

const STATUS: Record<OAuthErrorCode, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_client_metadata: 400,
  invalid_redirect_uri: 400,
  invalid_software_statement: 400,
  unapproved_software_statement: 400,
  access_denied: 403,
  not_found: 404,
  temporarily_unavailable: 503,
  server_error: 500,
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

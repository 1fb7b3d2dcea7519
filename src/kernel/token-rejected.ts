/*
 * An access token refused by a resource server (Moat's own APIs, the gateway check, the API guard),
 * with the RFC 6750 §3 / RFC 9449 §7.1 error code the challenge carries. Its response (status,
 * WWW-Authenticate, DPoP-Nonce, body) is decided in one place: bearerErrorResponse in
 * error-responses.ts.
 */

/** RFC 6750 §3.1 codes, and RFC 9449's `invalid_dpop_proof` (§7.1) and `use_dpop_nonce` (§9). */
export type TokenRejectionCode = 'invalid_token' | 'insufficient_scope' | 'invalid_request' | 'invalid_dpop_proof' | 'use_dpop_nonce';

export class TokenRejected extends Error {
  readonly error: TokenRejectionCode;
  /**
   * A status other than the code's own (TOKEN_REJECTION_STATUS in error-responses.ts), for a caller
   * whose contract asks for one; undefined, the code's own.
   */
  readonly status: number | undefined;
  /** A DPoP-Nonce to send with the refusal (RFC 9449 §9 `use_dpop_nonce`). */
  readonly nonce: string | undefined;
  constructor(error: TokenRejectionCode, description: string, status?: number, nonce?: string) {
    super(description);
    this.name = 'TokenRejected';
    this.error = error;
    this.status = status;
    this.nonce = nonce;
  }
}

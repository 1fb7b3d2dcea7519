/*
 * Why the customer's side of a decoupled authorisation (OpenID Connect CIBA Core 1.0) refuses an
 * approval or a denial: the bank app (the sandbox's page and API, the bank's own app through the
 * callback) is told by code. The status each code is answered with is decided in one place,
 * error-responses.ts (DECOUPLED_REFUSAL_STATUS, DECOUPLED_REFUSAL_PAGE_STATUS).
 */
export type DecoupledRefusalCode = 'not_found' | 'expired' | 'already_decided' | 'sca_required' | 'choice_invalid';

export class DecoupledRefusal extends Error {
  readonly code: DecoupledRefusalCode;
  constructor(code: DecoupledRefusalCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DecoupledRefusal';
    this.code = code;
  }
}

/*
 * A customer's sign-in refused by a JSON API that signs them in with each call (the sandbox bank
 * app's API): the password was wrong, sign-in is locked for a while after too many failures, or the
 * one-time code was refused. Its status and body are decided in error-responses.ts
 * (SIGN_IN_REFUSAL_STATUS), as are the sign-in pages' statuses.
 */
export type SignInRefusalCode = 'incorrect' | 'locked' | 'code_refused';

export class SignInRefused extends Error {
  readonly code: SignInRefusalCode;
  /** For `locked`: when the customer may try again (RFC 9110 §10.2.3 Retry-After). */
  readonly retryAfterSeconds: number | undefined;
  constructor(code: SignInRefusalCode, message: string, retryAfterSeconds?: number) {
    super(message);
    this.name = 'SignInRefused';
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

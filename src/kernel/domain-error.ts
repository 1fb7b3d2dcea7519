/*
 * Moat's typed domain errors: what went wrong in the domain's own words, with no HTTP in it. Each
 * JSON API turns them into its response dialect in one place (error-responses.ts), so a consent
 * that does not exist is a 404 on every API, and a route never picks a status by hand.
 */

/** The closed family of domain failures. */
export type DomainErrorKind =
  /** The thing named does not exist, or is not the caller's to learn about. */
  | 'not_found'
  /** It exists but its state forbids the change (a consent already Consumed, say). */
  | 'state_conflict'
  /** The caller's input is wrong in a way a schema could not tell. */
  | 'invalid_input'
  /** A backend Moat depends on cannot answer now; the caller may retry. */
  | 'unavailable'
  /** The caller sent more than its share; it may retry after `retryAfterSeconds`. */
  | 'rate_limited';

export class DomainError extends Error {
  readonly kind: DomainErrorKind;
  /** The text a response may carry; the message may hold more (for logs), the cause the internals. */
  readonly description: string;
  /** The request header at fault, for an `invalid_input` that is about one. */
  readonly header: string | undefined;
  /** The request outcome to log and count, when it is more precise than the response's error code. */
  readonly outcome: string | undefined;
  /** For `rate_limited`: when the caller may try again. */
  readonly retryAfterSeconds: number | undefined;
  constructor(
    kind: DomainErrorKind,
    message: string,
    options: { cause?: unknown; description?: string; header?: string; outcome?: string; retryAfterSeconds?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DomainError';
    this.kind = kind;
    this.description = options.description ?? message;
    this.header = options.header;
    this.outcome = options.outcome;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

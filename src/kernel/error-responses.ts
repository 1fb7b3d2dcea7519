import type { CodeRefusalReason } from './code-refusal.ts';
import { DecoupledRefusal, type DecoupledRefusalCode } from './decoupled-refusal.ts';
import { DomainError, type DomainErrorKind } from './domain-error.ts';
import type { PageRefusalCode } from './page-refusal.ts';
import { FormRefused } from './form-refused.ts';
import { OAuthError } from './oauth-error.ts';
import { SignInRefused, type SignInRefusalCode } from './sign-in-refused.ts';
import { SIGNING_ALGORITHMS } from './signing-algorithms.ts';
import { StrongSignInRequired } from './strong-sign-in-required.ts';
import type { TokenRejected, TokenRejectionCode } from './token-rejected.ts';

/*
 * The one place typed errors become responses of Moat's JSON APIs, one function per dialect:
 * OAuth JSON (`{ error, error_description }`, RFC 6749 §5.2) for the admin API, the sandbox APIs
 * and the last line of defence; OBIE JSON (`{ Code, Id, Message, Errors[] }`, UK Open Banking
 * Read/Write API v3.1) for the consent API; Bearer / DPoP challenges (RFC 6750 §3, RFC 9449 §7.1)
 * for an access token a resource server refuses; and the error page (htmlErrorResponse) for the
 * customer's browser pages. An error none knows is the caller's to treat as a
 * bug: a generic 500 with the request id (serverErrorResponse), its details in the log only.
 */

export interface ErrorResponse {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
  /** The outcome to log and count, when more precise than the body's error code. */
  outcome?: string;
}

/**
 * Writes an answer onto a Koa context (structurally typed: the kernel imports no framework). The
 * outcome is left to the caller, which may have logged a more precise one already.
 */
export function writeErrorResponse(ctx: { status: number; body: unknown; set(name: string, value: string): void }, response: ErrorResponse): void {
  ctx.status = response.status;
  for (const [name, value] of Object.entries(response.headers ?? {})) ctx.set(name, value);
  ctx.body = response.body;
}

/** RFC 9110 §10.2.3: how soon a client may retry an outage answer. */
const RETRY_AFTER_SECONDS = '5';

/** An error of oidc-provider's raised in Moat's routes: its status and code are meant for the client. */
interface ExposedProviderError {
  status: number;
  error: string;
  error_description?: string;
  expose: true;
}

function isProviderError(err: unknown): err is ExposedProviderError {
  const e = err as Partial<ExposedProviderError> | undefined;
  return e?.expose === true && typeof e.error === 'string' && typeof e.status === 'number' && e.status >= 400 && e.status < 600;
}

const withRequest = (description: string, requestId: string | undefined) => (requestId === undefined ? description : `${description} (request ${requestId})`);

export interface OAuthDialectOptions {
  /** Named on outage answers so support can find the log lines; absent, the body says nothing of it. */
  requestId?: string;
  /**
   * The status of a state conflict. The admin API answers 409 (RFC 9110 §15.5.10); the sandbox
   * resource APIs answer 400, as the OAuth resource-server errors they sit among (RFC 6750 §3.1).
   */
  stateConflictStatus?: 400 | 409;
  /** The code of a not-found answer where the surface's spec names one (Grant Management §7: invalid_grant_id). */
  notFoundError?: 'invalid_grant_id';
  /** The WWW-Authenticate challenge sent with a 401 answer (RFC 9110 §11.6.1), e.g. the admin listener's realm. */
  challenge?: string;
}

const OAUTH_STATUS: Record<Exclude<DomainErrorKind, 'state_conflict'>, { status: number; error: string }> = {
  not_found: { status: 404, error: 'not_found' },
  invalid_input: { status: 400, error: 'invalid_request' },
  unavailable: { status: 503, error: 'temporarily_unavailable' },
  // RFC 6585 §4, with the OAuth code for "try later" (RFC 6749 §4.1.2.1).
  rate_limited: { status: 429, error: 'temporarily_unavailable' },
};

/**
 * The status of a decoupled authorisation's refusal on the bank app's JSON APIs (the sandbox bank
 * app's API and the bank's own app's callback, docs/bank-app.openapi.json); the body's error is the
 * refusal's code.
 */
export const DECOUPLED_REFUSAL_STATUS: Readonly<Record<DecoupledRefusalCode, number>> = {
  not_found: 404,
  // RFC 9110 §15.5.11: the request existed and is gone for good; the TPP must ask again.
  expired: 410,
  already_decided: 409,
  sca_required: 401,
  choice_invalid: 400,
};

/**
 * The status of the same refusals on the sandbox bank app's page, which shows itself again with the
 * refusal said in the customer's words: a request that ended (expired, decided) is a 400 there.
 */
export const DECOUPLED_REFUSAL_PAGE_STATUS: Readonly<Record<DecoupledRefusalCode, number>> = {
  not_found: 404,
  expired: 400,
  already_decided: 400,
  sca_required: 401,
  choice_invalid: 400,
};

/**
 * The status of a refused sign-in, on the sign-in pages and the JSON APIs alike: wrong credentials
 * or a refused one-time code are 401; a sign-in locked after too many failures is 429 (RFC 6585 §4).
 */
export const SIGN_IN_REFUSAL_STATUS: Readonly<Record<SignInRefusalCode, number>> = {
  incorrect: 401,
  locked: 429,
  code_refused: 401,
};

/**
 * The status of a page refusing a one-time code: input that is no code, or no factor to check it
 * against, is the request's fault (400); a wrong or reused code is a failed authentication (401);
 * paused code entry is 429 (RFC 6585 §4).
 */
export const CODE_REFUSAL_STATUS: Readonly<Record<CodeRefusalReason, number>> = {
  malformed: 400,
  no_factor: 400,
  wrong: 401,
  used: 401,
  locked: 429,
};

/** A page's status for a refused code, and when a paused code entry may be tried again (RFC 9110 §10.2.3). */
export function codeRefusalStatus(refused: { reason: CodeRefusalReason; retryAfterSeconds?: number }): { status: number; retryAfterSeconds?: number } {
  const status = CODE_REFUSAL_STATUS[refused.reason];
  return refused.reason === 'locked' && refused.retryAfterSeconds !== undefined ? { status, retryAfterSeconds: refused.retryAfterSeconds } : { status };
}

/** The status of a customer's page shown again with a refusal in their words (kernel/page-refusal.ts). */
export const PAGE_REFUSAL_STATUS: Readonly<Record<PageRefusalCode, number>> = {
  out_of_step: 400,
  input_refused: 400,
  authentication_needed: 401,
  authentication_refused: 403,
  // RFC 9110 §15.5.10: the request conflicts with the current state of what it names.
  state_changed: 409,
  not_found: 404,
  unavailable: 503,
};

/**
 * What makes an error of oidc-provider's an outage it answers itself (a storage backend or the
 * signing service down): 503 (RFC 9110 §15.6.4), its code and description shown to the client.
 */
export const PROVIDER_OUTAGE = { status: 503, statusCode: 503, expose: true } as const;

/** The headers of a domain error's answer: when to retry (RFC 9110 §10.2.3). */
function retryHeaders(err: DomainError): Record<string, string> | undefined {
  if (err.kind === 'unavailable') return { 'Retry-After': RETRY_AFTER_SECONDS };
  if (err.kind === 'rate_limited' && err.retryAfterSeconds !== undefined) return { 'Retry-After': String(err.retryAfterSeconds) };
  return undefined;
}

/** The OAuth JSON answer to a typed error, or undefined for an error that is not one. */
export function oauthErrorResponse(err: OAuthError | DomainError | DecoupledRefusal | SignInRefused, options?: OAuthDialectOptions): ErrorResponse;
export function oauthErrorResponse(err: unknown, options?: OAuthDialectOptions): ErrorResponse | undefined;
export function oauthErrorResponse(err: unknown, options: OAuthDialectOptions = {}): ErrorResponse | undefined {
  if (err instanceof OAuthError) {
    const challenge = err.status === 401 && options.challenge !== undefined ? { headers: { 'WWW-Authenticate': options.challenge } } : {};
    return { status: err.status, ...challenge, body: { error: err.code, error_description: err.description } };
  }
  if (isProviderError(err)) return { status: err.status, body: { error: err.error, error_description: err.error_description ?? err.error } };
  if (err instanceof DecoupledRefusal) return { status: DECOUPLED_REFUSAL_STATUS[err.code], body: { error: err.code, error_description: err.message } };
  if (err instanceof SignInRefused) {
    const retry = err.retryAfterSeconds === undefined ? {} : { headers: { 'Retry-After': String(err.retryAfterSeconds) } };
    return { status: SIGN_IN_REFUSAL_STATUS[err.code], ...retry, body: { error: 'access_denied', error_description: err.message } };
  }
  if (!(err instanceof DomainError)) return undefined;
  const { status, error } =
    err.kind === 'state_conflict'
      ? { status: options.stateConflictStatus ?? 409, error: 'invalid_request' }
      : err.kind === 'not_found' && options.notFoundError !== undefined
        ? { status: 404, error: options.notFoundError }
        : OAUTH_STATUS[err.kind];
  const outage = err.kind === 'unavailable';
  const headers = retryHeaders(err);
  return {
    status,
    body: { error, error_description: outage ? withRequest(err.description, options.requestId) : err.description },
    ...(headers === undefined ? {} : { headers }),
    ...(err.outcome === undefined ? {} : { outcome: err.outcome }),
  };
}

/**
 * The readiness probe's answer while a backend Moat needs cannot answer (app.ts): the orchestrator
 * reads the status, the body names no backend, and Retry-After says when to ask again as on every
 * outage answer.
 */
export function notReadyResponse(): ErrorResponse {
  return { status: 503, headers: { 'Retry-After': RETRY_AFTER_SECONDS }, body: { status: 'unavailable' } };
}

/**
 * The gateway check's answer to a gateway that did not authenticate to it: 500, which nginx's
 * auth_request passes on as 500: a gateway that cannot authenticate is the bank's misconfiguration,
 * not the TPP's fault, so the TPP is not asked for another token (401) nor told it may not (403).
 */
export function gatewayUnauthenticatedResponse(description: string): ErrorResponse {
  return { status: 500, body: { error: 'gateway_unauthenticated', error_description: description } };
}

/** The generic answer to anything unexpected: nothing of the error, only where to look. */
export function serverErrorResponse(description: string, requestId?: string): ErrorResponse {
  return { status: 500, body: { error: 'server_error', error_description: withRequest(description, requestId) }, outcome: 'server_error' };
}

/** OBIE error codes Moat answers with. */
export type ObieErrorCode =
  | 'UK.OBIE.Field.Invalid'
  | 'UK.OBIE.Field.Missing'
  | 'UK.OBIE.Field.Unexpected'
  | 'UK.OBIE.Header.Missing'
  | 'UK.OBIE.Header.Invalid'
  | 'UK.OBIE.Resource.NotFound'
  | 'UK.OBIE.Resource.InvalidConsentStatus'
  | 'UK.OBIE.Resource.ConsentMismatch'
  | 'UK.OBIE.Unsupported.Scheme';

/** A refusal only the OBIE dialect has words for (a field, a header, a role); `path` names the field or header. */
export class ObieError extends Error {
  readonly status: number;
  readonly errorCode: ObieErrorCode;
  readonly path: string | undefined;
  constructor(status: number, errorCode: ObieErrorCode, message: string, path?: string) {
    super(message);
    this.name = 'ObieError';
    this.status = status;
    this.errorCode = errorCode;
    this.path = path;
  }
}

function asObie(err: unknown): ObieError | undefined {
  if (err instanceof ObieError) return err;
  if (err instanceof DomainError) {
    switch (err.kind) {
      case 'not_found':
        return new ObieError(404, 'UK.OBIE.Resource.NotFound', err.description);
      case 'state_conflict':
        return new ObieError(400, 'UK.OBIE.Resource.InvalidConsentStatus', err.description);
      case 'invalid_input':
        return err.header === undefined
          ? new ObieError(400, 'UK.OBIE.Field.Invalid', err.description)
          : new ObieError(400, 'UK.OBIE.Header.Invalid', err.description, err.header);
      case 'unavailable':
      case 'rate_limited':
        return undefined;
    }
  }
  if (err instanceof OAuthError && err.status === 400) return new ObieError(400, 'UK.OBIE.Field.Invalid', err.description);
  return undefined;
}

const OBIE_STATUS_TEXT: Record<number, string> = { 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict' };

/**
 * The OBIE JSON answer to a typed error, or undefined for one the dialect does not cover (an outage
 * is answered in OAuth JSON by the last line of defence, as for every API).
 */
export function obieErrorResponse(err: unknown, requestId: string | undefined): (ErrorResponse & { errorCode: ObieErrorCode }) | undefined {
  const ob = asObie(err);
  if (ob === undefined) return undefined;
  return {
    status: ob.status,
    errorCode: ob.errorCode,
    body: {
      Code: `${ob.status} ${OBIE_STATUS_TEXT[ob.status] ?? 'BadRequest'}`,
      Id: requestId,
      Message: ob.message,
      Errors: [{ ErrorCode: ob.errorCode, Message: ob.message, ...(ob.path === undefined ? {} : { Path: ob.path }) }],
    },
  };
}

export interface BearerDialectOptions {
  /** The request's Authorization header: a DPoP scheme is answered with a DPoP challenge. */
  authorization: string;
  /** The proof algorithms a DPoP challenge offers (RFC 9449 §7.1 `algs`). */
  algorithms?: readonly string[];
  /**
   * Answer 401 or 403 only: nginx's auth_request passes those on and turns any other status into a
   * 500, and the API guard's verdict has no other (the gateway check and packages/api-guard).
   */
  challengeStatusesOnly?: boolean;
}

/**
 * The status of each refusal of an access token: a token missing, not active, not bound to the
 * presented key or proof, or a proof that needs a fresh nonce, is 401 with the challenge (RFC 6750
 * §3, RFC 9449 §7.1 and §9); a token without the scope or consent the call needs is 403 (RFC 6750 §3.1).
 */
export const TOKEN_REJECTION_STATUS: Readonly<Record<TokenRejectionCode, number>> = {
  invalid_token: 401,
  invalid_request: 401,
  invalid_dpop_proof: 401,
  use_dpop_nonce: 401,
  insufficient_scope: 403,
};

/** Whether a refusal is answered with a DPoP challenge: DPoP's own errors, or a DPoP scheme (RFC 9449 §7.1). */
function isDpopRefusal(err: TokenRejected, authorization: string): boolean {
  return err.error === 'invalid_dpop_proof' || err.error === 'use_dpop_nonce' || authorization.split(' ')[0]!.toLowerCase() === 'dpop';
}

/**
 * The answer to an access token a resource server refuses, as RFC 6750 §3 (Bearer) and RFC 9449
 * §7.1 (DPoP) say: the status, a WWW-Authenticate challenge naming the error, the DPoP-Nonce a
 * `use_dpop_nonce` asks the client to use (§9), and the OAuth JSON body.
 */
export function bearerErrorResponse(err: TokenRejected, options: BearerDialectOptions): ErrorResponse & { headers: Record<string, string> } {
  const own = err.status ?? TOKEN_REJECTION_STATUS[err.error];
  const status = options.challengeStatusesOnly === true ? (own === 403 ? 403 : 401) : own;
  return {
    status,
    headers: {
      ...(err.nonce === undefined ? {} : { 'DPoP-Nonce': err.nonce }),
      'WWW-Authenticate': wwwAuthenticate(err, isDpopRefusal(err, options.authorization), options.algorithms),
    },
    body: { error: err.error, error_description: err.message },
    outcome: err.error,
  };
}

/** The RFC 6750 §3 (Bearer) or RFC 9449 §7.1 (DPoP) challenge for a refusal. */
export function wwwAuthenticate(err: TokenRejected, dpop: boolean, algorithms: readonly string[] = SIGNING_ALGORITHMS): string {
  const challenge = `error="${err.error}", error_description="${challengeParameter(err.message)}"`;
  return dpop ? `DPoP ${challenge}, algs="${algorithms.join(' ')}"` : `Bearer ${challenge}`;
}

/** A value fit for a challenge's error_description: RFC 6750 §3 allows printable ASCII without `"` and `\`. */
export function challengeParameter(value: string): string {
  return value
    .replace(/§/g, 'section ')
    .replace(/["\\]/g, "'")
    .replace(/[^\x20-\x7e]/g, '?');
}

/** What went wrong, in the customer's terms; each has its own words on the error page (views/locales error.<kind>.*). */
export type ErrorPageKind = 'session_expired' | 'form_expired' | 'request_problem' | 'unavailable' | 'not_found' | 'other';

/**
 * What an error page shows of an error: its status, the kind whose plain words the page says
 * (`messageKey` names catalogue wording that replaces the kind's own), and the OAuth code and
 * description, which go to the log (and only on the developer portal to the page).
 */
export interface ErrorPageAnswer {
  status: number;
  error: string | undefined;
  description: string | undefined;
  kind: ErrorPageKind;
  messageKey?: string;
}

/** What a page shows of an outage: never the backend or its address. */
const UNAVAILABLE_DESCRIPTION = 'The service is briefly unavailable. Try again in a moment.';

/** The customer's kind of an answer, by its status, when the error does not say more. */
export function errorPageKindOf(status: number): ErrorPageKind {
  if (status === 503) return 'unavailable';
  if (status === 404) return 'not_found';
  return status === 400 ? 'request_problem' : 'other';
}

/**
 * The error page's answer to a typed error, or undefined for an error no dialect knows (the
 * caller's bug: a 500). oidc-provider's errors meant for the client (an unknown or expired
 * interaction) are known by their exposed status; its SessionNotFound (matched by name: the kernel
 * imports no oidc-provider) is an expired sign-in session, and its 5xx the bank's trouble.
 */
export function htmlErrorResponse(err: FormRefused | OAuthError | DomainError | DecoupledRefusal | SignInRefused | StrongSignInRequired): ErrorPageAnswer;
export function htmlErrorResponse(err: unknown): ErrorPageAnswer | undefined;
export function htmlErrorResponse(err: unknown): ErrorPageAnswer | undefined {
  if (err instanceof FormRefused) return { status: err.status, error: err.code, description: err.description, kind: 'form_expired' };
  if (err instanceof DecoupledRefusal) {
    // views/locales bankApp.refused.<code>: the English message stays in the log and the JSON APIs.
    const status = DECOUPLED_REFUSAL_PAGE_STATUS[err.code];
    return { status, error: err.code, description: err.message, kind: errorPageKindOf(status), messageKey: `bankApp.refused.${err.code}` };
  }
  if (err instanceof SignInRefused) {
    const status = SIGN_IN_REFUSAL_STATUS[err.code];
    return { status, error: 'access_denied', description: err.message, kind: errorPageKindOf(status) };
  }
  if (err instanceof StrongSignInRequired) return { status: 403, error: 'sca_required', description: err.message, kind: 'other', messageKey: err.messageKey };
  if (err instanceof OAuthError) return { status: err.status, error: err.code, description: err.description, kind: errorPageKindOf(err.status) };
  if (err instanceof DomainError) {
    if (err.kind === 'unavailable') return { status: 503, error: 'temporarily_unavailable', description: UNAVAILABLE_DESCRIPTION, kind: 'unavailable' };
    const answer = oauthErrorResponse(err);
    return { status: answer.status, error: answer.body.error as string, description: err.description, kind: errorPageKindOf(answer.status) };
  }
  const provided = err as { status?: unknown; error?: unknown; error_description?: unknown; expose?: unknown; name?: unknown } | undefined;
  if (provided?.expose !== true || typeof provided.status !== 'number') return undefined;
  const kind = provided.name === 'SessionNotFound' ? 'session_expired' : provided.status >= 500 ? 'unavailable' : 'request_problem';
  return {
    status: provided.status,
    error: typeof provided.error === 'string' ? provided.error : undefined,
    description: typeof provided.error_description === 'string' ? provided.error_description : undefined,
    kind,
  };
}

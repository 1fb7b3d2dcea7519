import { ConsentNotFound, ConsentStateConflict, IdempotencyConflict } from '../../src/consents/consent.ts';
import { AccountsUnavailable } from '../../src/customers/account-directory.ts';
import type { CodeRefusalReason } from '../../src/kernel/code-refusal.ts';
import { DecoupledRefusal, type DecoupledRefusalCode } from '../../src/kernel/decoupled-refusal.ts';
import { DomainError } from '../../src/kernel/domain-error.ts';
import {
  bearerErrorResponse,
  CODE_REFUSAL_STATUS,
  codeRefusalStatus,
  DECOUPLED_REFUSAL_PAGE_STATUS,
  DECOUPLED_REFUSAL_STATUS,
  gatewayUnauthenticatedResponse,
  htmlErrorResponse,
  notReadyResponse,
  ObieError,
  obieErrorResponse,
  oauthErrorResponse,
  PAGE_REFUSAL_STATUS,
  PROVIDER_OUTAGE,
  serverErrorResponse,
  SIGN_IN_REFUSAL_STATUS,
  TOKEN_REJECTION_STATUS,
} from '../../src/kernel/error-responses.ts';
import { FormRefused } from '../../src/kernel/form-refused.ts';
import { OAuthError } from '../../src/kernel/oauth-error.ts';
import type { PageRefusalCode } from '../../src/kernel/page-refusal.ts';
import { SignInRefused, type SignInRefusalCode } from '../../src/kernel/sign-in-refused.ts';
import { StorageUnavailableError } from '../../src/kernel/storage-unavailable.ts';
import { StrongSignInRequired } from '../../src/kernel/strong-sign-in-required.ts';
import { TokenRejected, type TokenRejectionCode } from '../../src/kernel/token-rejected.ts';

/*
 * One mapping per response dialect from Moat's typed errors: every JSON API answers a domain error
 * the same way, and nothing of an error's internals (its message for the log, its cause) reaches a
 * body unless the error says it may.
 */

describe('the OAuth JSON dialect (RFC 6749 §5.2)', () => {
  it('answers an OAuthError with its own code and status', () => {
    expect(oauthErrorResponse(new OAuthError('invalid_client', 'who are you'))).toEqual({
      status: 401,
      body: { error: 'invalid_client', error_description: 'who are you' },
    });
  });

  it('answers a missing thing with 404 not_found', () => {
    expect(oauthErrorResponse(new ConsentNotFound('aac-1'))).toEqual({
      status: 404,
      body: { error: 'not_found', error_description: 'consent aac-1 does not exist or belongs to another party' },
    });
  });

  it('answers a state conflict with 409 by default and with the status a surface chooses', () => {
    const conflict = new ConsentStateConflict('aac-1', 'Consumed', 'Revoked');
    expect(oauthErrorResponse(conflict)).toEqual({
      status: 409,
      body: { error: 'invalid_request', error_description: 'consent aac-1 is Consumed and cannot become Revoked' },
    });
    expect(oauthErrorResponse(conflict, { stateConflictStatus: 400 })?.status).toBe(400);
  });

  it('answers an outage with 503 temporarily_unavailable, Retry-After and only the public description', () => {
    const down = new AccountsUnavailable('timeout', 'the account service at 10.0.0.7 timed out');
    expect(oauthErrorResponse(down)).toEqual({
      status: 503,
      headers: { 'Retry-After': '5' },
      body: { error: 'temporarily_unavailable', error_description: 'the account directory is unavailable; try again shortly' },
    });
    const storage = oauthErrorResponse(new StorageUnavailableError('redis at 10.0.0.8:6379'), { requestId: 'req-1' });
    expect(storage).toEqual(expect.objectContaining({ status: 503, outcome: 'storage_unavailable' }));
    expect(storage?.body.error_description).toBe('a storage backend is unavailable; retry later (request req-1)');
  });

  it('answers an error oidc-provider exposes with its status and code', () => {
    const exposed = Object.assign(new Error('x'), { expose: true, status: 400, error: 'invalid_request', error_description: 'interaction expired' });
    expect(oauthErrorResponse(exposed)).toEqual({ status: 400, body: { error: 'invalid_request', error_description: 'interaction expired' } });
  });

  it('leaves anything else to the generic 500, which names only the request', () => {
    expect(oauthErrorResponse(new Error('password=hunter2'))).toBeUndefined();
    expect(serverErrorResponse('an unexpected error occurred', 'req-2')).toEqual({
      status: 500,
      outcome: 'server_error',
      body: { error: 'server_error', error_description: 'an unexpected error occurred (request req-2)' },
    });
  });
});

describe('the OBIE JSON dialect (UK Open Banking Read/Write API v3.1 errors)', () => {
  it('answers a missing consent with 404 UK.OBIE.Resource.NotFound', () => {
    expect(obieErrorResponse(new ConsentNotFound('aac-1'), 'req-1')).toEqual({
      status: 404,
      errorCode: 'UK.OBIE.Resource.NotFound',
      body: {
        Code: '404 NotFound',
        Id: 'req-1',
        Message: 'consent aac-1 does not exist or belongs to another party',
        Errors: [{ ErrorCode: 'UK.OBIE.Resource.NotFound', Message: 'consent aac-1 does not exist or belongs to another party' }],
      },
    });
  });

  it('answers a state conflict with 400 UK.OBIE.Resource.InvalidConsentStatus', () => {
    expect(obieErrorResponse(new ConsentStateConflict('pdc-1', 'Consumed', 'Consumed'), 'r')?.errorCode).toBe('UK.OBIE.Resource.InvalidConsentStatus');
  });

  it('answers bad input about a header with UK.OBIE.Header.Invalid and its Path', () => {
    const res = obieErrorResponse(new IdempotencyConflict('k1'), 'r');
    if (res === undefined) throw new Error('an idempotency conflict has an OBIE answer');
    expect(res.errorCode).toBe('UK.OBIE.Header.Invalid');
    expect((res.body.Errors as { Path?: string }[])[0]!.Path).toBe('x-idempotency-key');
    expect(obieErrorResponse(new DomainError('invalid_input', 'Amount is not a number'), 'r')?.errorCode).toBe('UK.OBIE.Field.Invalid');
  });

  it('answers its own refusals and a 400 OAuthError as fields, and leaves outages to the OAuth dialect', () => {
    expect(obieErrorResponse(new ObieError(403, 'UK.OBIE.Resource.ConsentMismatch', 'needs PISP'), 'r')?.body.Code).toBe('403 Forbidden');
    expect(obieErrorResponse(new OAuthError('invalid_request', 'bad'), 'r')?.errorCode).toBe('UK.OBIE.Field.Invalid');
    expect(obieErrorResponse(new StorageUnavailableError('postgres'), 'r')).toBeUndefined();
  });
});

describe('the Bearer / DPoP challenge dialect (RFC 6750 §3, RFC 9449 §7.1)', () => {
  it('answers a refused Bearer token with its status, a Bearer challenge naming the error, and the OAuth body', () => {
    expect(bearerErrorResponse(new TokenRejected('invalid_token', 'the access token is not active'), { authorization: 'Bearer abc' })).toEqual({
      status: 401,
      outcome: 'invalid_token',
      headers: { 'WWW-Authenticate': 'Bearer error="invalid_token", error_description="the access token is not active"' },
      body: { error: 'invalid_token', error_description: 'the access token is not active' },
    });
  });

  it('answers a missing scope with 403 insufficient_scope (RFC 6750 §3.1)', () => {
    const answer = bearerErrorResponse(new TokenRejected('insufficient_scope', 'this call needs the accounts scope', 403), { authorization: 'Bearer abc' });
    expect(answer.status).toBe(403);
    expect(answer.headers['WWW-Authenticate']).toBe('Bearer error="insufficient_scope", error_description="this call needs the accounts scope"');
  });

  it('answers under the DPoP scheme with a DPoP challenge listing the algorithms, and makes the description fit a challenge', () => {
    const answer = bearerErrorResponse(new TokenRejected('invalid_token', 'bound to a "different" key (RFC 8705 §3)'), {
      authorization: 'DPoP abc',
      algorithms: ['PS256', 'ES256'],
    });
    expect(answer.headers['WWW-Authenticate']).toBe(
      `DPoP error="invalid_token", error_description="bound to a 'different' key (RFC 8705 section 3)", algs="PS256 ES256"`,
    );
    expect(answer.body.error_description).toBe('bound to a "different" key (RFC 8705 §3)');
  });

  it('answers use_dpop_nonce with a DPoP challenge and the DPoP-Nonce to use, whatever the scheme sent (RFC 9449 §9)', () => {
    const answer = bearerErrorResponse(new TokenRejected('use_dpop_nonce', 'the proof is stale', 401, 'n-1'), { authorization: '', algorithms: ['ES256'] });
    expect(answer.headers).toEqual({
      'DPoP-Nonce': 'n-1',
      'WWW-Authenticate': 'DPoP error="use_dpop_nonce", error_description="the proof is stale", algs="ES256"',
    });
  });

  it('answers a scheme that only starts with "dpop" with a Bearer challenge: the scheme is the first word', () => {
    const answer = bearerErrorResponse(new TokenRejected('invalid_request', 'send the access token'), { authorization: 'DPoPx abc' });
    expect(answer.headers['WWW-Authenticate']).toMatch(/^Bearer /);
  });

  it('keeps to 401 and 403 for a gateway, whose auth_request turns any other status into a 500', () => {
    const refused = new TokenRejected('invalid_request', 'malformed', 400);
    expect(bearerErrorResponse(refused, { authorization: 'Bearer abc' }).status).toBe(400);
    expect(bearerErrorResponse(refused, { authorization: 'Bearer abc', challengeStatusesOnly: true }).status).toBe(401);
    expect(bearerErrorResponse(new TokenRejected('insufficient_scope', 'x', 403), { authorization: '', challengeStatusesOnly: true }).status).toBe(403);
  });
});

describe('the OAuth JSON dialect for refusals with a code of their own', () => {
  it('answers a rate limit with 429 temporarily_unavailable and the Retry-After of the limit (RFC 6585 §4)', () => {
    const limited = new DomainError('rate_limited', 'too many token requests from this address; retry after 7 s', {
      retryAfterSeconds: 7,
      outcome: 'rate_limited',
    });
    expect(oauthErrorResponse(limited)).toEqual({
      status: 429,
      headers: { 'Retry-After': '7' },
      outcome: 'rate_limited',
      body: { error: 'temporarily_unavailable', error_description: 'too many token requests from this address; retry after 7 s' },
    });
    expect(obieErrorResponse(limited, 'req-3')).toBeUndefined();
  });

  it('answers a grant that is not found with 404 invalid_grant_id where Grant Management §7 names it', () => {
    expect(oauthErrorResponse(new ConsentNotFound('aac-2'), { notFoundError: 'invalid_grant_id' })).toEqual({
      status: 404,
      body: { error: 'invalid_grant_id', error_description: 'consent aac-2 does not exist or belongs to another party' },
    });
  });

  it("answers an operator's refused credentials with 401, their code, and the listener's challenge when it has one", () => {
    const refused = new OAuthError('certificate_revoked', 'the operator certificate is revoked');
    expect(oauthErrorResponse(refused, { challenge: 'Bearer realm="moat-admin"' })).toEqual({
      status: 401,
      headers: { 'WWW-Authenticate': 'Bearer realm="moat-admin"' },
      body: { error: 'certificate_revoked', error_description: 'the operator certificate is revoked' },
    });
    expect(oauthErrorResponse(refused).headers).toBeUndefined();
    // A challenge belongs to a 401 only (RFC 9110 §11.6.1).
    expect(oauthErrorResponse(new OAuthError('cross_origin_request', 'no pages'), { challenge: 'Bearer' })).toEqual({
      status: 403,
      body: { error: 'cross_origin_request', error_description: 'no pages' },
    });
  });

  it('answers a request for a name the listener does not serve with 421 misdirected_request (RFC 9110 §15.5.20)', () => {
    expect(oauthErrorResponse(new OAuthError('misdirected_request', 'not my name')).status).toBe(421);
    expect(oauthErrorResponse(new OAuthError('unsupported_media_type', 'JSON only')).status).toBe(415);
  });
});

describe("the error page dialect (a customer's browser pages; OBIE Customer Experience Guidelines)", () => {
  it('answers an OAuthError with its status and a kind of plain words chosen by the status', () => {
    expect(htmlErrorResponse(new OAuthError('invalid_request', 'no such interaction'))).toEqual({
      status: 400,
      error: 'invalid_request',
      description: 'no such interaction',
      kind: 'request_problem',
    });
    expect(htmlErrorResponse(new OAuthError('access_denied', 'not yours'))?.kind).toBe('other');
    expect(htmlErrorResponse(new OAuthError('not_found', 'gone'))?.kind).toBe('not_found');
  });

  it('tells the customer their form expired when its CSRF check refused it', () => {
    expect(htmlErrorResponse(new FormRefused('the form has expired'))).toEqual({
      status: 400,
      error: 'invalid_request',
      description: 'the form has expired',
      kind: 'form_expired',
    });
  });

  it('answers an outage with 503 and words that name no backend', () => {
    expect(htmlErrorResponse(new StorageUnavailableError('redis at 10.0.0.8:6379'))).toEqual({
      status: 503,
      error: 'temporarily_unavailable',
      description: 'The service is briefly unavailable. Try again in a moment.',
      kind: 'unavailable',
    });
  });

  it('answers a missing thing with the not-found page', () => {
    expect(htmlErrorResponse(new ConsentNotFound('aac-3'))).toEqual(expect.objectContaining({ status: 404, error: 'not_found', kind: 'not_found' }));
  });

  it("answers oidc-provider's exposed errors: an unknown session as expired, a 5xx as unavailable", () => {
    const sessionNotFound = Object.assign(new Error('invalid_request'), {
      name: 'SessionNotFound',
      expose: true,
      status: 400,
      error: 'invalid_request',
      error_description: 'interaction session not found',
    });
    expect(htmlErrorResponse(sessionNotFound)).toEqual({
      status: 400,
      error: 'invalid_request',
      description: 'interaction session not found',
      kind: 'session_expired',
    });
    const down = Object.assign(new Error('x'), { expose: true, status: 503, error: 'temporarily_unavailable' });
    expect(htmlErrorResponse(down)).toEqual({ status: 503, error: 'temporarily_unavailable', description: undefined, kind: 'unavailable' });
  });

  it('leaves anything else to the 500, which shows nothing of it', () => {
    expect(htmlErrorResponse(new Error('password=hunter2'))).toBeUndefined();
  });
});

/*
 * The tables pinned: each refusal the bank app's APIs, its page and the sign-in answer with, so a
 * code that moves to another status fails here first (the statuses are a contract: the bank-app
 * interface's OpenAPI document, `moat sandbox approve`, the TPPs' sandbox automation).
 */
describe('decoupled authorisation refusals (CIBA Core, the bank app)', () => {
  const json: [DecoupledRefusalCode, number][] = [
    ['not_found', 404],
    ['expired', 410],
    ['already_decided', 409],
    ['sca_required', 401],
    ['choice_invalid', 400],
  ];
  it.each(json)('answers %s on the JSON APIs with %i and the code as the error', (code, status) => {
    expect(oauthErrorResponse(new DecoupledRefusal(code, `refused: ${code}`))).toEqual({
      status,
      body: { error: code, error_description: `refused: ${code}` },
    });
  });

  const page: [DecoupledRefusalCode, number, string][] = [
    ['not_found', 404, 'not_found'],
    ['expired', 400, 'request_problem'],
    ['already_decided', 400, 'request_problem'],
    ['sca_required', 401, 'other'],
    ['choice_invalid', 400, 'request_problem'],
  ];
  it.each(page)('answers %s on the bank app page with %i and its catalogue words', (code, status, kind) => {
    expect(htmlErrorResponse(new DecoupledRefusal(code, 'in English'))).toEqual({
      status,
      error: code,
      description: 'in English',
      kind,
      messageKey: `bankApp.refused.${code}`,
    });
  });

  it('has a status for every code in both dialects, and no other', () => {
    expect(DECOUPLED_REFUSAL_STATUS).toEqual(Object.fromEntries(json));
    expect(DECOUPLED_REFUSAL_PAGE_STATUS).toEqual(Object.fromEntries(page.map(([code, status]) => [code, status])));
  });
});

describe('refused sign-ins', () => {
  const table: [SignInRefusalCode, number][] = [
    ['incorrect', 401],
    ['locked', 429],
    ['code_refused', 401],
  ];
  it.each(table)('answers %s with %i access_denied', (code, status) => {
    expect(oauthErrorResponse(new SignInRefused(code, 'no'))).toEqual({ status, body: { error: 'access_denied', error_description: 'no' } });
    expect(htmlErrorResponse(new SignInRefused(code, 'no'))).toEqual({ status, error: 'access_denied', description: 'no', kind: 'other' });
  });

  it('tells a locked sign-in when to try again (RFC 9110 §10.2.3)', () => {
    expect(oauthErrorResponse(new SignInRefused('locked', 'paused', 300)).headers).toEqual({ 'Retry-After': '300' });
  });

  it('has a status for every code, and no other', () => {
    expect(SIGN_IN_REFUSAL_STATUS).toEqual(Object.fromEntries(table));
  });
});

describe('the bank app callback without the bank app certificate', () => {
  it('is answered 401 unauthorized_client', () => {
    expect(oauthErrorResponse(new OAuthError('unauthorized_client', 'present it'))).toEqual({
      status: 401,
      body: { error: 'unauthorized_client', error_description: 'present it' },
    });
  });
});

describe('refused one-time codes (RFC 6238) on the sign-in and security pages', () => {
  const table: [CodeRefusalReason, number][] = [
    ['malformed', 400],
    ['no_factor', 400],
    ['wrong', 401],
    ['used', 401],
    ['locked', 429],
  ];
  it.each(table)('answers %s with %i', (reason, status) => {
    expect(codeRefusalStatus({ reason })).toEqual({ status });
  });

  it('tells a paused code entry when to try again (RFC 9110 §10.2.3)', () => {
    expect(codeRefusalStatus({ reason: 'locked', retryAfterSeconds: 120 })).toEqual({ status: 429, retryAfterSeconds: 120 });
  });

  it('has a status for every reason, and no other', () => {
    expect(CODE_REFUSAL_STATUS).toEqual(Object.fromEntries(table));
  });
});

describe('a page that needs a strong sign-in (issue 16 §4)', () => {
  it('is the 403 error page with the page’s own words', () => {
    expect(htmlErrorResponse(new StrongSignInRequired('error.scaRequired.dashboard'))).toEqual({
      status: 403,
      error: 'sca_required',
      description: 'a strong sign-in is needed',
      kind: 'other',
      messageKey: 'error.scaRequired.dashboard',
    });
  });
});

describe('the readiness probe', () => {
  it('answers a backend it cannot reach with 503, Retry-After and no backend named', () => {
    expect(notReadyResponse()).toEqual({ status: 503, headers: { 'Retry-After': '5' }, body: { status: 'unavailable' } });
  });
});

describe("a customer's page shown again with a refusal", () => {
  const table: [PageRefusalCode, number][] = [
    ['out_of_step', 400],
    ['input_refused', 400],
    ['authentication_needed', 401],
    ['authentication_refused', 403],
    ['state_changed', 409],
    ['not_found', 404],
    ['unavailable', 503],
  ];
  it('answers each refusal with its status, and has no other', () => {
    expect(PAGE_REFUSAL_STATUS).toEqual(Object.fromEntries(table));
  });
});

describe('an outage oidc-provider answers itself (storage, signing)', () => {
  it('is a 503 shown to the client', () => {
    expect(PROVIDER_OUTAGE).toEqual({ status: 503, statusCode: 503, expose: true });
  });
});

describe('refused access tokens (RFC 6750 §3, RFC 9449 §7.1)', () => {
  const table: [TokenRejectionCode, number][] = [
    ['invalid_token', 401],
    ['invalid_request', 401],
    ['invalid_dpop_proof', 401],
    ['use_dpop_nonce', 401],
    ['insufficient_scope', 403],
  ];
  it.each(table)('answers %s with %i unless the caller names another status', (code, status) => {
    expect(bearerErrorResponse(new TokenRejected(code, 'no'), { authorization: 'Bearer abc' }).status).toBe(status);
    expect(bearerErrorResponse(new TokenRejected(code, 'no', 400), { authorization: 'Bearer abc' }).status).toBe(400);
  });

  it('has a status for every code, and no other', () => {
    expect(TOKEN_REJECTION_STATUS).toEqual(Object.fromEntries(table));
  });
});

describe('the gateway check refusing an unauthenticated gateway', () => {
  it('is a 500 gateway_unauthenticated: the bank misconfigured it, the TPP did nothing wrong', () => {
    expect(gatewayUnauthenticatedResponse('no secret')).toEqual({ status: 500, body: { error: 'gateway_unauthenticated', error_description: 'no secret' } });
  });
});

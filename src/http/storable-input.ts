import type { Middleware } from 'koa';
import { OAuthError } from './oauth-error.ts';
import { readText } from './read-body.ts';
import { unstorableForm, unstorableText } from './storable-text.ts';

/** oidc-provider's own body limit (lib/shared/selective_body.js); it does not apply one to a body read before it. */
const PROVIDER_BODY_LIMIT = 56 * 1024;

/**
 * In front of oidc-provider's endpoints (PAR, authorization, token, introspection, revocation, …):
 * the query and a form or JSON body are checked before oidc-provider parses them, so a NUL or an
 * unpaired surrogate in a nonce, a state or a claims request is the client's 400 invalid_request
 * naming the parameter — not a 500 when a refresh token carrying it is written, after the code
 * was spent. The body is read here once and handed on as the already-read body oidc-provider
 * accepts (`ctx.request.body`, lib/shared/selective_body.js). Moat's own routes check theirs where
 * they read them (read-body.ts); registration reads its own body first.
 */
export function storableProviderInput(): Middleware {
  return async (ctx, next) => {
    const query = unstorableForm(ctx.querystring);
    if (query !== undefined) throw new OAuthError('invalid_request', query);
    const type = ctx.req.readable ? ctx.is('application/x-www-form-urlencoded', 'application/json') : false;
    if (typeof type === 'string') {
      const text = await readText(ctx.req, 'invalid_request', PROVIDER_BODY_LIMIT);
      const problem = type === 'application/json' ? jsonProblem(text) : unstorableForm(text);
      if (problem !== undefined) throw new OAuthError('invalid_request', problem);
      (ctx.request as { body?: unknown }).body = text;
    }
    await next();
  };
}

/** What cannot be stored in a JSON body; one that does not parse is left for the endpoint to refuse. */
function jsonProblem(text: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  return unstorableText(parsed);
}

import type { Context, Middleware } from 'koa';
import { OAuthError } from '../kernel/oauth-error.ts';
import { readText } from './read-body.ts';
import { unstorableForm, unstorableText } from './storable-text.ts';

/**
 * How a body read here reaches oidc-provider, which would otherwise read the stream itself: within
 * what limit, and where it takes an already-read body from (internals.ts, PROVIDER_BODY).
 */
export interface ProviderBodyHandOff {
  limit: number;
  handOn(ctx: Context, text: string): void;
}

/**
 * In front of oidc-provider's endpoints (PAR, authorization, token, introspection, revocation, …):
 * the query and a form or JSON body are checked before oidc-provider parses them, so a NUL or an
 * unpaired surrogate in a nonce, a state or a claims request is the client's 400 invalid_request
 * naming the parameter — not a 500 when a refresh token carrying it is written, after the code
 * was spent. The body is read here once, within oidc-provider's own limit, and handed on as the
 * already-read body it accepts. Moat's own routes check theirs where they read them
 * (read-body.ts); registration reads its own body first.
 */
export function storableProviderInput(body: ProviderBodyHandOff): Middleware {
  return async (ctx, next) => {
    const query = unstorableForm(ctx.querystring);
    if (query !== undefined) throw new OAuthError('invalid_request', query);
    const type = ctx.req.readable ? ctx.is('application/x-www-form-urlencoded', 'application/json') : false;
    if (typeof type === 'string') {
      const text = await readText(ctx.req, 'invalid_request', body.limit);
      const problem = type === 'application/json' ? jsonProblem(text) : unstorableForm(text);
      if (problem !== undefined) throw new OAuthError('invalid_request', problem);
      body.handOn(ctx, text);
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

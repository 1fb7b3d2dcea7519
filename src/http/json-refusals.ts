import type { Middleware } from 'koa';
import { DecoupledRefusal } from '../kernel/decoupled-refusal.ts';
import { oauthErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import { SignInRefused } from '../kernel/sign-in-refused.ts';

/*
 * The error boundary of a JSON API a bank app calls on the customer's behalf (the sandbox bank
 * app's API, the bank's own app's callback): its routes throw the kernel's refusals and the
 * kernel's OAuth dialect answers them (error-responses.ts), never stored (RFC 9111 §5.2.2.5) as the
 * refusal speaks of one customer's requests. Anything else goes on to the last line of defence.
 */
export function jsonRefusals(): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      if (!(err instanceof DecoupledRefusal || err instanceof SignInRefused || err instanceof OAuthError)) throw err;
      ctx.set('Cache-Control', 'no-store');
      writeErrorResponse(ctx, oauthErrorResponse(err));
    }
  };
}

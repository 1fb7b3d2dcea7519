import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../observability/logger.ts';
import { spentAuthorizationCode, unspendAuthorizationCode } from './internals.ts';

/**
 * oidc-provider spends an authorization code before it issues the tokens, and some of its checks
 * come only after that (internals.ts, spentAuthorizationCode): the DPoP proof's jti not seen before
 * (RFC 9449 §11.1), the proof's key being the one the code is bound to (dpop_jkt), the account.
 * A request refused there got no token, and its code must not be lost with it: a TPP told to make a
 * new proof would otherwise retry into "authorization code already consumed" — a replay, which
 * revokes the grant. Nor when issuing fails inside Moat (a 5xx: a store refusing a write, an
 * outage). So whenever a token request fails after its code was spent, the code is given back:
 * what was saved of the tokens is destroyed (nobody received them) and the code is saved again,
 * unconsumed, with the lifetime it had left, for the client's retry. A request refused before the
 * code was spent (a wrong code_verifier or redirect_uri, a code already redeemed) leaves it as it
 * was. Runs as provider.use middleware, after oidc-provider rendered the error.
 */
export function giveBackCodeOnFailure(logger: Logger): Middleware {
  return async (koaCtx, next) => {
    await next();
    const ctx = koaCtx as unknown as KoaContextWithOIDC;
    if (ctx.oidc === undefined || ctx.status < 400) return;
    const code = spentAuthorizationCode(ctx);
    if (code === undefined) return;
    const { oidc } = ctx;
    try {
      for (const token of [oidc.entities.AccessToken, oidc.entities.RefreshToken]) {
        if (token?.jti !== undefined) await token.destroy();
      }
      if (code.isExpired) return;
      await unspendAuthorizationCode(code);
      logger.warn({ event: 'token.code_given_back', clientId: code.clientId, status: ctx.status }, 'the token request failed after spending its authorization code; the code stays redeemable');
    } catch (err) {
      logger.error({ err, event: 'token.code_give_back_failed', clientId: code.clientId }, 'the token request failed and its authorization code could not be given back');
    }
  };
}

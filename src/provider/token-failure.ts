import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../observability/logger.ts';

/**
 * oidc-provider spends an authorization code before it issues the tokens
 * (lib/actions/grants/authorization_code.js: consumeGrantSource, then issueTokens). When issuing
 * then fails inside Moat — a 5xx: a store refusing a write, an outage — the client did nothing
 * wrong and got no token, yet its code would be spent. So the code is given back: what was saved of
 * the tokens is destroyed (nobody received them) and the code is saved again, unconsumed, with the
 * lifetime it had left, for the client's retry. A 4xx is the client's doing: the code stays spent.
 * Runs as provider.use middleware, after oidc-provider rendered the error.
 */
export function giveBackCodeOnServerError(logger: Logger): Middleware {
  return async (koaCtx, next) => {
    await next();
    const ctx = koaCtx as unknown as KoaContextWithOIDC;
    const { oidc } = ctx;
    if (oidc?.route !== 'token' || ctx.status < 500) return;
    // Set only once this request has consumed the code.
    const code = oidc.entities.AuthorizationCode;
    if (code === undefined) return;
    try {
      for (const token of [oidc.entities.AccessToken, oidc.entities.RefreshToken]) {
        if (token?.jti !== undefined) await token.destroy();
      }
      if (code.isExpired) return;
      await code.save();
      logger.warn({ event: 'token.code_given_back', clientId: code.clientId, status: ctx.status }, 'the token request failed inside Moat; its authorization code stays redeemable');
    } catch (err) {
      logger.error({ err, event: 'token.code_give_back_failed', clientId: code.clientId }, 'the token request failed and its authorization code could not be given back');
    }
  };
}

import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../observability/logger.ts';
import { TOKEN_REQUEST_UNDONE, type TokenRequestUndone } from '../observability/provider-events.ts';
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
 * unconsumed, with the lifetime it had left, for the client's retry; TOKEN_REQUEST_UNDONE tells the
 * metrics and the audit log. A request refused before the
 * code was spent (a wrong code_verifier or redirect_uri, a code already redeemed) leaves it as it
 * was. Runs as provider.use middleware, after oidc-provider rendered the error.
 */
export function giveBackCodeOnFailure(provider: Provider, logger: Logger): Middleware {
  // The token instances oidc-provider told were issued (saved, or a JWT signed); one whose save
  // failed was never issued, so is not withdrawn either.
  const issued = new WeakSet<object>();
  for (const event of ['access_token.saved', 'access_token.issued', 'refresh_token.saved']) {
    provider.on(event as 'access_token.saved', (token) => issued.add(token));
  }
  return async (koaCtx, next) => {
    await next();
    const ctx = koaCtx as unknown as KoaContextWithOIDC;
    if (ctx.oidc === undefined || ctx.status < 400) return;
    const code = spentAuthorizationCode(ctx);
    if (code === undefined) return;
    const { oidc } = ctx;
    const undone: TokenRequestUndone = { code, codeGivenBack: false, withdrawn: [] };
    try {
      for (const token of [oidc.entities.AccessToken, oidc.entities.RefreshToken]) {
        if (token?.jti === undefined) continue;
        await token.destroy();
        if (issued.has(token)) undone.withdrawn.push(token);
      }
      if (!code.isExpired) {
        await unspendAuthorizationCode(code);
        undone.codeGivenBack = true;
        logger.warn(
          { event: 'token.code_given_back', clientId: code.clientId, status: ctx.status },
          'the token request failed after spending its authorization code; the code stays redeemable',
        );
      }
      if (undone.withdrawn.length > 0 || undone.codeGivenBack) oidc.provider.emit(TOKEN_REQUEST_UNDONE, ctx, undone);
    } catch (err) {
      logger.error(
        { err, event: 'token.code_give_back_failed', clientId: code.clientId },
        'the token request failed and its authorization code could not be given back',
      );
    }
  };
}

import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { oauthErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import { PROVIDER_ROUTE } from './internals.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { intentProblem } from '../consents/intent-problem.ts';
import { INTENT_CLAIM, intentIdFromClaims } from '../consents/provider-hooks.ts';

/**
 * oidc-provider middleware (provider.use) for the places where its own pipeline has no hook:
 * a PAR naming an intent is checked before the TPP gets a request_uri, a token response
 * carries the consent id (and the intent id, UK OB style) next to the granted authorization_details,
 * and a token issued or introspected active is a use of its consent (`onUse`, consent-use.ts).
 */
export function consentProviderMiddleware(consents: ConsentService, options: { onUse?: (grantId: string) => void } = {}): Middleware {
  return async (koaCtx, next) => {
    await next();
    const ctx = koaCtx as unknown as KoaContextWithOIDC;
    const { oidc } = ctx;
    if (oidc === undefined) return;
    if (oidc.route === PROVIDER_ROUTE.introspection && ctx.status === 200 && (ctx.body as { active?: unknown } | undefined)?.active === true) {
      const grantId = oidc.entities.Grant?.jti;
      if (grantId !== undefined) options.onUse?.(grantId);
      return;
    }
    if (oidc.route === PROVIDER_ROUTE.pushedAuthorizationRequest && ctx.status === 201 && oidc.client !== undefined) {
      const intentId = intentIdFromClaims(oidc.params?.claims);
      if (intentId === undefined) return;
      const problem = await intentProblem(consents, intentId, oidc.client.clientId);
      if (problem !== undefined) {
        // The pushed request stays unused and expires with its short lifetime.
        writeErrorResponse(ctx, oauthErrorResponse(new OAuthError('invalid_request', problem)));
      }
      return;
    }
    if (oidc.route === PROVIDER_ROUTE.token && ctx.status === 200) {
      const grantId = (oidc.entities.AccessToken as { grantId?: string } | undefined)?.grantId;
      if (grantId !== undefined) options.onUse?.(grantId);
      const extra = (oidc.entities.AccessToken as { extra?: Record<string, unknown> } | undefined)?.extra;
      const body = ctx.body as Record<string, unknown> | undefined;
      if (body === undefined || typeof extra?.consent_id !== 'string') return;
      ctx.body = {
        ...body,
        consent_id: extra.consent_id,
        // FAPI Grant Management §5.3: the grant the tokens belong to is the consent.
        grant_id: extra.consent_id,
        ...(typeof extra[INTENT_CLAIM] === 'string' ? { [INTENT_CLAIM]: extra[INTENT_CLAIM] } : {}),
      };
    }
  };
}

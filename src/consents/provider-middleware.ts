import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ConsentService } from './consent-service.ts';
import { INTENT_CLAIM, intentIdFromClaims } from './provider-hooks.ts';

/**
 * oidc-provider middleware (provider.use) for the two places where its own pipeline has no hook:
 * a PAR naming an intent is checked before the TPP gets a request_uri, and a token response
 * carries the consent id (and the intent id, UK OB style) next to the granted authorization_details.
 */
export function consentProviderMiddleware(consents: ConsentService): Middleware {
  return async (koaCtx, next) => {
    await next();
    const ctx = koaCtx as unknown as KoaContextWithOIDC;
    const { oidc } = ctx;
    if (oidc === undefined) return;
    if (oidc.route === 'pushed_authorization_request' && ctx.status === 201 && oidc.client !== undefined) {
      const intentId = intentIdFromClaims(oidc.params?.claims);
      if (intentId === undefined) return;
      const problem = await intentProblem(consents, intentId, oidc.client.clientId);
      if (problem !== undefined) {
        // The pushed request stays unused and expires with its short lifetime.
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', error_description: problem };
      }
      return;
    }
    if (oidc.route === 'token' && ctx.status === 200) {
      const extra = (oidc.entities.AccessToken as { extra?: Record<string, unknown> } | undefined)?.extra;
      const body = ctx.body as Record<string, unknown> | undefined;
      if (body === undefined || typeof extra?.consent_id !== 'string') return;
      ctx.body = {
        ...body,
        consent_id: extra.consent_id,
        ...(typeof extra[INTENT_CLAIM] === 'string' ? { [INTENT_CLAIM]: extra[INTENT_CLAIM] } : {}),
      };
    }
  };
}

/** Why an intent cannot be authorised by this client now, or undefined when it can. */
export async function intentProblem(consents: ConsentService, intentId: string, clientId: string): Promise<string | undefined> {
  let consent;
  try {
    consent = await consents.getForClient(intentId, clientId);
  } catch {
    return `${INTENT_CLAIM} ${intentId} is not a consent this client lodged`;
  }
  if (consent.status !== 'AwaitingAuthorisation') {
    return `consent ${intentId} is ${consent.status}, not AwaitingAuthorisation; lodge a new consent`;
  }
  if (consent.expiresAt !== undefined && consent.expiresAt.getTime() <= Date.now()) {
    return `consent ${intentId} reached its ExpirationDateTime; lodge a new consent`;
  }
  return undefined;
}

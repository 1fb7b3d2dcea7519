import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import {
  checkSenderConstraint,
  renderTokenRejected,
  requireScope,
  tokenFromHeader,
  TokenRejected,
  type PresentedToken,
  type SenderConstraintChecks,
} from '../http/bearer-token.ts';
import { DomainError } from '../kernel/domain-error.ts';
import { oauthErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import type { Logger } from '../observability/logger.ts';
import { ConsentNotFound, ConsentStateConflict, type Consent } from './consent.ts';
import type { ConsentService } from './consent-service.ts';
import { GRANTS_PATH } from './grant-management.ts';

/*
 * The grant management endpoint (FAPI Grant Management for OAuth 2.0 §7): `GET /grants/{grant_id}`
 * says what a grant holds — its scopes, its authorization_details with the accounts granted, its
 * status — and `DELETE /grants/{grant_id}` revokes it, the consent and every token at once, as the
 * customer's dashboard does. The caller is the client the grant belongs to, with an access token
 * bound to its certificate or DPoP key carrying `grant_management_query` or `grant_management_revoke`.
 * Another client's grant, or one that no longer holds (revoked, expired, used), is not found.
 */

type Ctx = ParameterizedContext;

interface Deps {
  provider: Provider;
  consents: ConsentService;
  senderConstraint: SenderConstraintChecks;
  logger: Logger;
}

/** Grant Management §7.1: the query response, built from the consent. */
function grantView(consent: Consent): Record<string, unknown> {
  return {
    scopes: [{ scope: consent.scope }],
    ...(consent.granted === undefined ? {} : { authorization_details: [consent.granted] }),
    // Moat's additions: where the grant stands and until when.
    status: consent.status,
    ...(consent.expiresAt === undefined ? {} : { expires_at: Math.floor(consent.expiresAt.getTime() / 1000) }),
  };
}

export function createGrantManagementRouter(deps: Deps): Router {
  const router = new Router({ prefix: GRANTS_PATH });

  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (err) {
      if (err instanceof TokenRejected) return renderTokenRejected(ctx, err);
      if (!(err instanceof ConsentNotFound)) throw err;
      // Nothing of the consent id's owner is said: the description is the grant's, not the store's.
      writeErrorResponse(ctx, oauthErrorResponse(new DomainError('not_found', 'no such grant for this client'), { notFoundError: 'invalid_grant_id' }));
    }
  });

  /** The calling client, from a live, sender-constrained access token with `scope`. */
  const authenticate = async (ctx: Ctx, scope: string): Promise<string> => {
    const value = tokenFromHeader(ctx);
    const token = (await deps.provider.ClientCredentials.find(value)) ?? (await deps.provider.AccessToken.find(value));
    if (token === undefined || token.isExpired) throw new TokenRejected('invalid_token', 'the access token is not active');
    if ((await deps.provider.Client.find(token.clientId!)) === undefined)
      throw new TokenRejected('invalid_token', 'the client of this access token no longer exists');
    requireScope(token as unknown as PresentedToken, scope);
    await checkSenderConstraint(ctx, token as unknown as PresentedToken, value, deps.senderConstraint);
    return token.clientId!;
  };

  /** The client's grant while it holds; otherwise not found (nothing said of other clients' grants). */
  const liveGrant = async (id: string, clientId: string) => {
    const consent = await deps.consents.getForClient(id, clientId);
    if (consent.status !== 'Authorised') throw new ConsentNotFound(id);
    return consent;
  };

  router.get('/:grantId', async (ctx) => {
    const clientId = await authenticate(ctx, 'grant_management_query');
    ctx.body = grantView(await liveGrant(ctx.params.grantId!, clientId));
  });

  router.delete('/:grantId', async (ctx) => {
    const clientId = await authenticate(ctx, 'grant_management_revoke');
    const consent = await liveGrant(ctx.params.grantId!, clientId);
    try {
      await deps.consents.revoke(consent.id, { actor: 'tpp', actorId: clientId, reason: 'revoked by the client through the grant management endpoint' });
    } catch (err) {
      // Revoked or expired by someone else meanwhile: gone either way.
      if (!(err instanceof ConsentStateConflict)) throw err;
      throw new ConsentNotFound(consent.id);
    }
    deps.logger.info({ event: 'grant.revoked', outcome: 'grant_revoked', clientId, consentId: consent.id }, 'grant revoked by its client');
    ctx.status = 204;
  });

  return router;
}

import type { Middleware } from 'koa';
import { decodeJwt } from 'jose';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { challengeParameter, describeProofFailure, DPOP_PROOF_REPLAYED } from '../http/bearer-token.ts';
import { PROVIDER_WORDING } from './internals.ts';

/*
 * oidc-provider refuses rightly, but in places says too little for a TPP to act on: a replayed DPoP
 * proof is answered `invalid_grant` "grant request is invalid" at the token endpoint (the answer to
 * a wrong code_verifier too), a proof whose signature fails "invalid DPoP key binding", an API
 * token at userinfo "access token missing openid scope". Here those answers are rewritten after
 * oidc-provider rendered them: it hands the error it rendered to its `<endpoint>.error` listeners
 * within the request, and this middleware (provider.use) then rewrites the body and the
 * WWW-Authenticate challenge. The status stays oidc-provider's (400 at the token and PAR
 * endpoints, 401 or 403 at userinfo).
 */

/** The endpoints that check DPoP proofs or access tokens, by the event their errors are told to. */
const ERROR_EVENTS = ['grant.error', 'pushed_authorization_request.error', 'userinfo.error'] as const;

/** What oidc-provider says to a token userinfo will not read (its wording: internals.ts). */
const NOT_FOR_USERINFO = new Set<string>([PROVIDER_WORDING.userinfoWithoutOpenid, PROVIDER_WORDING.userinfoAudience]);

interface Answer {
  error: string;
  description: string;
}

export function actionableErrors(provider: Provider): Middleware {
  const rendered = new WeakMap<object, errors.OIDCProviderError>();
  for (const event of ERROR_EVENTS) {
    provider.on(event as 'grant.error', (ctx, err) => {
      rendered.set(ctx, err);
    });
  }
  return async (koaCtx, next) => {
    await next();
    const err = rendered.get(koaCtx);
    const body = koaCtx.body as Record<string, unknown> | undefined;
    // An HTML error page (a browser at userinfo) keeps oidc-provider's words.
    if (err === undefined || typeof body !== 'object' || body === null || typeof body.error !== 'string') return;
    const answer = better(koaCtx as unknown as KoaContextWithOIDC, err);
    if (answer === undefined) return;
    koaCtx.body =
      answer.error === body.error ? { ...body, error_description: answer.description } : { error: answer.error, error_description: answer.description };
    const challenge: unknown = koaCtx.response.get('WWW-Authenticate');
    if (typeof challenge === 'string' && challenge !== '') {
      koaCtx.set(
        'WWW-Authenticate',
        challenge
          .replace(/\berror="[^"]*"/, `error="${answer.error}"`)
          .replace(/\berror_description="[^"]*"/, `error_description="${challengeParameter(answer.description)}"`),
      );
    }
  };
}

function better(ctx: KoaContextWithOIDC, err: errors.OIDCProviderError): Answer | undefined {
  const detail = err.error_detail ?? err.error_description;
  // RFC 9449 §11.1: a proof is used once. oidc-provider refuses a replay with the endpoint's
  // generic error (invalid_grant, invalid_request, invalid_token); RFC 9449 names it invalid_dpop_proof.
  if (detail === PROVIDER_WORDING.dpopReplayed) return { error: 'invalid_dpop_proof', description: DPOP_PROOF_REPLAYED };
  if (err instanceof errors.InvalidDpopProof) return dpopProof(ctx, err);
  if (err instanceof errors.InvalidGrant) return boundGrant(err.error_detail);
  if (ctx.oidc.route === 'userinfo' && NOT_FOR_USERINFO.has(detail ?? '')) return userinfoToken(ctx, err.error);
  return undefined;
}

/** What was wrong with the proof itself, where oidc-provider does not say. */
function dpopProof(ctx: KoaContextWithOIDC, err: errors.OIDCProviderError): Answer | undefined {
  const rejected = (why: string) => ({ error: 'invalid_dpop_proof', description: `DPoP proof rejected: ${why}` });
  switch (err.error_description) {
    case PROVIDER_WORDING.dpopKeyBinding:
      return rejected(describeProofFailure(err.cause));
    case PROVIDER_WORDING.dpopHtuMismatch: {
      const expected = new URL(ctx.oidc.urlFor(ctx.oidc.route)).href;
      let htu: unknown;
      try {
        htu = decodeJwt(ctx.get('DPoP')).htu;
      } catch {
        htu = undefined;
      }
      return rejected(`htu must be ${expected} (RFC 9449 §4.3), not ${String(htu).slice(0, 200)}`);
    }
    case PROVIDER_WORDING.dpopHtmMismatch:
      return rejected(`htm must be ${ctx.method} (RFC 9449 §4.3)`);
    default:
      return undefined;
  }
}

/**
 * A valid proof of the wrong key, or none, for a code bound to a DPoP key or from a client that
 * registered for DPoP: the grant is refused (invalid_grant, as oidc-provider answers), saying why.
 */
function boundGrant(detail: string | undefined): Answer | undefined {
  const grant = (description: string) => ({ error: 'invalid_grant', description });
  switch (detail) {
    case PROVIDER_WORDING.dpopJktMismatch:
      return grant(
        'the DPoP proof is signed with another key than the one this authorization code is bound to (dpop_jkt at the pushed authorization request, RFC 9449 §10)',
      );
    case PROVIDER_WORDING.dpopMissingForBoundCode:
      return grant('this authorization code is bound to a DPoP key (dpop_jkt, RFC 9449 §10): send a DPoP proof of that key');
    case PROVIDER_WORDING.dpopRequired:
      return grant('this client registered dpop_bound_access_tokens: send a DPoP proof with every token request (RFC 9449 §5)');
    default:
      return undefined;
  }
}

/**
 * An access token userinfo cannot read: one issued for an API (RFC 8707), or without the openid
 * scope. Says how to get one it can.
 */
function userinfoToken(ctx: KoaContextWithOIDC, error: string): Answer | undefined {
  const token = ctx.oidc.entities.AccessToken as { aud?: string | string[]; scopes?: Set<string> } | undefined;
  if (token === undefined) return undefined;
  const aud = [token.aud ?? []].flat();
  if (aud.length > 0) {
    return {
      error,
      description: `this access token is for ${aud.join(' ')}, not for userinfo: get a userinfo access token with a refresh request that names scope=openid (RFC 6749 §6), and use the API token for the API`,
    };
  }
  if (token.scopes?.has('openid') !== true)
    return { error, description: 'this access token was issued without the openid scope: userinfo needs an authorization that asked for scope openid' };
  return undefined;
}

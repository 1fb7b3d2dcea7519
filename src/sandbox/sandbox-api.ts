import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Router from '@koa/router';
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import type { ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import { SIGNING_ALGORITHMS } from '../config/schema.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';

/*
 * A resource server inside the sandbox, so a TPP's first token has something to call — and so the
 * sandbox shows what a bank's API must check: the token is active, meant for this API, carries the
 * scope, and is presented over the certificate (RFC 8705 §3) or with a proof of the DPoP key
 * (RFC 9449 §7) it is bound to. A bound token without its key is refused.
 */

export const SANDBOX_API_PATH = '/sandbox-api';

/** How far a DPoP proof's iat may be from now (RFC 9449 §11.1 leaves the window to the server). */
const DPOP_WINDOW_SECONDS = 60;

interface Deps {
  provider: Provider;
  issuer: string;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
}

type Ctx = ParameterizedContext;

class TokenRejected extends Error {
  readonly error: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | 'invalid_dpop_proof';
  readonly status: number;
  constructor(error: TokenRejected['error'], description: string, status = 401) {
    super(description);
    this.error = error;
    this.status = status;
  }
}

export function sandboxApiIdentifier(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}${SANDBOX_API_PATH}`;
}

export function createSandboxApiRouter(deps: Deps): Router {
  const router = new Router({ prefix: SANDBOX_API_PATH });
  const audience = sandboxApiIdentifier(deps.issuer);

  const authorize = async (ctx: Ctx, scope: string) => {
    const header = ctx.get('authorization');
    const [scheme, value] = header.split(' ');
    if (value === undefined || !/^(Bearer|DPoP)$/i.test(scheme ?? '')) throw new TokenRejected('invalid_request', 'send the access token in the Authorization header (RFC 6750 §2.1 / RFC 9449 §7.1)');
    const token = await deps.provider.AccessToken.find(value);
    if (token === undefined || token.isExpired) throw new TokenRejected('invalid_token', 'the access token is not active');
    const grant = token.grantId === undefined ? undefined : await deps.provider.Grant.find(token.grantId);
    if (grant === undefined) throw new TokenRejected('invalid_token', 'the access token is not active');
    const aud = [token.aud ?? []].flat();
    if (!aud.includes(audience)) throw new TokenRejected('invalid_token', `the access token is not meant for ${audience}`);
    if (!String(token.scope ?? '').split(' ').includes(scope)) throw new TokenRejected('insufficient_scope', `this call needs the ${scope} scope`, 403);

    const x5t = (token as unknown as Record<string, string | undefined>)['x5t#S256'];
    if (x5t !== undefined) {
      const presented = deps.clientCertificate(ctx.req);
      if (presented === undefined) throw new TokenRejected('invalid_token', 'this access token is bound to a client certificate; present it (RFC 8705 §3)');
      if (presented.thumbprint !== x5t) throw new TokenRejected('invalid_token', 'this access token is bound to a different client certificate (RFC 8705 §3)');
    }
    if (token.jkt !== undefined) await checkDpopProof(ctx, value, token.jkt);
    return token;
  };

  const handle = (scope: string, body: (accountId: string) => unknown) => async (ctx: Ctx) => {
    try {
      const token = await authorize(ctx, scope);
      ctx.body = body(token.accountId!);
    } catch (err) {
      if (!(err instanceof TokenRejected)) throw err;
      ctx.status = err.status;
      const scheme = ctx.get('authorization').toLowerCase().startsWith('dpop') ? 'DPoP' : 'Bearer';
      ctx.set('WWW-Authenticate', `${scheme} error="${err.error}", error_description="${err.message.replace(/"/g, "'")}"`);
      ctx.body = { error: err.error, error_description: err.message };
    }
  };

  router.get('/accounts', handle('accounts', (accountId) => ({
    data: { accounts: demoAccounts(accountId) },
  })));

  return router;
}

async function checkDpopProof(ctx: Ctx, accessToken: string, jkt: string): Promise<void> {
  if (!ctx.get('authorization').toLowerCase().startsWith('dpop ')) throw new TokenRejected('invalid_token', 'this access token is DPoP-bound; use the DPoP authorization scheme (RFC 9449 §7.1)');
  const proof = ctx.get('dpop');
  if (proof === '') throw new TokenRejected('invalid_dpop_proof', 'DPoP proof missing');
  try {
    const { typ } = decodeProtectedHeader(proof);
    if (typ !== 'dpop+jwt') throw new Error('typ must be dpop+jwt');
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { algorithms: [...SIGNING_ALGORITHMS], maxTokenAge: DPOP_WINDOW_SECONDS, clockTolerance: 10 });
    const url = new URL(ctx.originalUrl, `https://${ctx.host}`);
    if (payload.htm !== ctx.method) throw new Error('htm does not match the request method');
    if (payload.htu !== `${url.origin}${url.pathname}`) throw new Error('htu does not match the request URL');
    if (payload.ath !== createHash('sha256').update(accessToken).digest('base64url')) throw new Error('ath does not match the access token');
    if (await calculateJwkThumbprint(protectedHeader.jwk as JWK) !== jkt) throw new Error('the proof key is not the key the token is bound to');
  } catch (err) {
    throw new TokenRejected('invalid_dpop_proof', `DPoP proof rejected: ${(err as Error).message}`);
  }
}

function demoAccounts(accountId: string): { accountId: string; currency: string; nickname: string; balance: string }[] {
  const seed = createHash('sha256').update(accountId).digest();
  return [
    { accountId: `${accountId}-current`, currency: 'GBP', nickname: 'Current account', balance: (seed.readUInt16BE(0) / 10).toFixed(2) },
    { accountId: `${accountId}-savings`, currency: 'GBP', nickname: 'Savings', balance: (seed.readUInt16BE(2) * 3 / 10).toFixed(2) },
  ];
}

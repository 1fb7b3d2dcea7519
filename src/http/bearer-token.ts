import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import type { ParameterizedContext } from 'koa';
import { SIGNING_ALGORITHMS } from '../config/schema.ts';
import type { Finding } from '../diagnostics/call-record.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';

/*
 * What an API that Moat itself serves (the consent API, the sandbox API) checks of an access
 * token: it is active, and it is presented over the certificate (RFC 8705 §3) or with a proof of
 * the DPoP key (RFC 9449 §7) it is bound to. A bound token without its key is refused.
 */

/** How far a DPoP proof's iat may be from now (RFC 9449 §11.1 leaves the window to the server). */
const DPOP_WINDOW_SECONDS = 60;

export class TokenRejected extends Error {
  readonly error: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | 'invalid_dpop_proof';
  readonly status: number;
  constructor(error: TokenRejected['error'], description: string, status = 401) {
    super(description);
    this.name = 'TokenRejected';
    this.error = error;
    this.status = status;
  }
}

/** The minimum of an oidc-provider access token these checks read. */
export interface PresentedToken {
  isExpired: boolean;
  jkt?: string;
  scope?: string;
  clientId?: string | undefined;
  'x5t#S256'?: string;
}

/** The token value from the Authorization header (RFC 6750 §2.1 / RFC 9449 §7.1). */
export function tokenFromHeader(ctx: ParameterizedContext): string {
  const [scheme, value, ...rest] = ctx.get('authorization').split(' ');
  if (value === undefined || value === '' || rest.length > 0 || !/^(Bearer|DPoP)$/i.test(scheme ?? '')) {
    throw new TokenRejected('invalid_request', 'send the access token in the Authorization header (RFC 6750 §2.1 / RFC 9449 §7.1)');
  }
  return value;
}

/** Throws TokenRejected unless the request presents the key the token is bound to. */
export async function checkSenderConstraint(
  ctx: ParameterizedContext,
  token: PresentedToken,
  value: string,
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined,
  /** The registry's refusal of the presented certificate (revoked, retired), if any. */
  certificateRefusal?: (req: IncomingMessage) => string | undefined,
): Promise<void> {
  const x5t = token['x5t#S256'];
  if (x5t !== undefined) {
    const presented = clientCertificate(ctx.req);
    if (presented === undefined) {
      ctx.state.outcome = 'mtls_no_certificate';
      throw new TokenRejected('invalid_token', 'this access token is bound to a client certificate; present it (RFC 8705 §3)');
    }
    if (presented.thumbprint !== x5t) {
      ctx.state.outcome = 'mtls_thumbprint_mismatch';
      ctx.state.finding = { expected: `x5t#S256 ${x5t}`, got: `x5t#S256 ${presented.thumbprint}` } satisfies Finding;
      throw new TokenRejected('invalid_token', 'this access token is bound to a different client certificate (RFC 8705 §3)');
    }
    const refusal = certificateRefusal?.(ctx.req);
    if (refusal !== undefined) {
      ctx.state.outcome = refusal.includes('revoked') ? 'mtls_certificate_revoked' : refusal.includes('retired') ? 'mtls_certificate_retired' : 'mtls_revocation_unknown';
      throw new TokenRejected('invalid_token', `this access token is bound to a certificate that can no longer be used: ${refusal}`);
    }
  }
  if (token.jkt !== undefined) await checkDpopProof(ctx, value, token.jkt);
}

export function requireScope(token: PresentedToken, scope: string): void {
  if (!String(token.scope ?? '').split(' ').includes(scope)) throw new TokenRejected('insufficient_scope', `this call needs the ${scope} scope`, 403);
}

/** Writes a TokenRejected as RFC 6750 §3 / RFC 9449 §7.1 say: status, WWW-Authenticate and body. */
export function renderTokenRejected(ctx: ParameterizedContext, err: TokenRejected): void {
  ctx.status = err.status;
  const scheme = ctx.get('authorization').toLowerCase().startsWith('dpop') ? 'DPoP' : 'Bearer';
  ctx.set('WWW-Authenticate', `${scheme} error="${err.error}", error_description="${err.message.replace(/["\\]/g, "'")}"`);
  ctx.body = { error: err.error, error_description: err.message };
}

async function checkDpopProof(ctx: ParameterizedContext, accessToken: string, jkt: string): Promise<void> {
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

import type { IncomingMessage } from 'node:http';
import type { ParameterizedContext } from 'koa';
import { MTLS_OUTCOME_OF_REFUSAL, type CertificateRefusal } from '../kernel/certificate-refusal.ts';
import type { Finding } from '../kernel/finding.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { bearerErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import { TokenRejected, verifyDpopProof, type DpopNonces, type ProofReplayStore } from './dpop-proof.ts';

export {
  challengeParameter,
  describeProofFailure,
  DPOP_PROOF_REPLAYED,
  TokenRejected,
  verifyDpopProof,
  wwwAuthenticate,
  type DpopNonces,
  type ProofReplayStore,
} from './dpop-proof.ts';

/*
 * What an API that Moat itself serves (the consent API, the sandbox API) checks of an access
 * token: it is active, and it is presented over the certificate (RFC 8705 §3) or with a proof of
 * the DPoP key (RFC 9449 §7) it is bound to. A bound token without its key is refused. A DPoP
 * proof is checked as the token endpoint checks one: its htu against the issuer's URL of the API
 * (never the Host header), its jti claimed once, its iat bounded, server nonces (RFC 9449 §9).
 */

/** What the sender-constraint checks of Moat's own APIs need. */
export interface SenderConstraintChecks {
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  /** The registry's refusal of the presented certificate (revoked, retired), if any. */
  certificateRefusal?: (req: IncomingMessage) => CertificateRefusal | undefined;
  /** The issuer: Moat's APIs are served on its URL, so a proof's htu is checked against it. */
  issuer: string;
  replay: ProofReplayStore;
  nonces: DpopNonces;
  /** Seconds since the epoch; a test may freeze it. */
  now?: () => number;
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
export async function checkSenderConstraint(ctx: ParameterizedContext, token: PresentedToken, value: string, checks: SenderConstraintChecks): Promise<void> {
  const x5t = token['x5t#S256'];
  if (x5t !== undefined) {
    const presented = checks.clientCertificate(ctx.req);
    if (presented === undefined) {
      ctx.state.outcome = 'mtls_no_certificate';
      throw new TokenRejected('invalid_token', 'this access token is bound to a client certificate; present it (RFC 8705 §3)');
    }
    if (presented.thumbprint !== x5t) {
      ctx.state.outcome = 'mtls_thumbprint_mismatch';
      ctx.state.finding = { expected: `x5t#S256 ${x5t}`, got: `x5t#S256 ${presented.thumbprint}` } satisfies Finding;
      throw new TokenRejected('invalid_token', 'this access token is bound to a different client certificate (RFC 8705 §3)');
    }
    const refusal = checks.certificateRefusal?.(ctx.req);
    if (refusal !== undefined) {
      ctx.state.outcome = MTLS_OUTCOME_OF_REFUSAL[refusal.code];
      throw new TokenRejected('invalid_token', `this access token is bound to a certificate that can no longer be used: ${refusal.description}`);
    }
  }
  if (token.jkt !== undefined) await checkDpopProof(ctx, value, token.jkt, checks);
}

export function requireScope(token: PresentedToken, scope: string): void {
  if (
    !String(token.scope ?? '')
      .split(' ')
      .includes(scope)
  )
    throw new TokenRejected('insufficient_scope', `this call needs the ${scope} scope`);
}

/** Writes a TokenRejected as RFC 6750 §3 / RFC 9449 §7.1 say: status, WWW-Authenticate and body. */
export function renderTokenRejected(ctx: ParameterizedContext, err: TokenRejected): void {
  writeErrorResponse(ctx, bearerErrorResponse(err, { authorization: ctx.get('authorization') }));
}

async function checkDpopProof(ctx: ParameterizedContext, accessToken: string, jkt: string, checks: SenderConstraintChecks): Promise<void> {
  // The API's URL as the issuer names it: the Host header is the client's to choose.
  const htu = new URL(`${checks.issuer.replace(/\/$/, '')}${ctx.path}`).href;
  const nonce = await verifyDpopProof({ authorization: ctx.get('authorization'), proof: ctx.get('dpop'), method: ctx.method, htu, accessToken, jkt }, checks);
  if (nonce !== undefined) ctx.set('DPoP-Nonce', nonce);
}

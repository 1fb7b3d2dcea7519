import type { IncomingMessage } from 'node:http';
import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { ALL_FORWARDED_CERT_HEADERS } from '../tls/forwarded-certificate.ts';

/*
 * Why a TPP's call failed, in one word on its log line and in the metrics: a transport (mTLS)
 * failure is told apart from an OAuth error. oidc-provider answers every client-authentication
 * failure with the same `invalid_client` (rightly: the client learns nothing it could probe with);
 * the operator needs the cause, which Moat knows from the certificate it saw.
 */

export const MTLS_OUTCOMES = [
  'mtls_no_certificate', 'mtls_untrusted_forwarder', 'mtls_untrusted_chain', 'mtls_expired', 'mtls_not_yet_valid',
  'mtls_not_for_client_auth', 'mtls_certificate_revoked', 'mtls_certificate_retired', 'mtls_revocation_unknown',
  'mtls_subject_mismatch', 'mtls_thumbprint_mismatch',
] as const;

const MTLS_AUTH_METHODS = new Set(['tls_client_auth', 'self_signed_tls_client_auth']);

export function createMtlsOutcomeMiddleware(deps: {
  provider: Provider;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  refusal: (req: IncomingMessage) => string | undefined;
}): Middleware {
  return async (ctx, next) => {
    await next();
    if (ctx.status !== 401 || typeof ctx.state.outcome === 'string') return;
    const error = (ctx.body as { error?: unknown } | undefined)?.error;
    if (error !== 'invalid_client') return;
    const oidc = (ctx as { oidc?: { params?: { client_id?: unknown }; client?: { clientId: string } } }).oidc;
    const clientId = oidc?.client?.clientId ?? (typeof oidc?.params?.client_id === 'string' ? oidc.params.client_id : undefined);
    const client = clientId === undefined ? undefined : await deps.provider.Client.find(clientId).catch(() => undefined);
    const method = client?.metadata().token_endpoint_auth_method;
    if (method !== undefined && !MTLS_AUTH_METHODS.has(method)) return;
    const cause = classify(ctx.req, deps);
    if (cause !== undefined) ctx.state.outcome = cause;
    else if (method === 'tls_client_auth') ctx.state.outcome = 'mtls_subject_mismatch';
  };
}

function classify(req: IncomingMessage, deps: { clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined; refusal: (req: IncomingMessage) => string | undefined }): string | undefined {
  const presented = deps.clientCertificate(req);
  if (presented === undefined) {
    return ALL_FORWARDED_CERT_HEADERS.some((h) => req.headers[h] !== undefined) ? 'mtls_untrusted_forwarder' : 'mtls_no_certificate';
  }
  if (!presented.verification.trusted) {
    return {
      'untrusted-chain': 'mtls_untrusted_chain', expired: 'mtls_expired', 'not-yet-valid': 'mtls_not_yet_valid', 'not-for-client-auth': 'mtls_not_for_client_auth',
    }[presented.verification.reason];
  }
  const refusal = deps.refusal(req);
  if (refusal === undefined) return undefined;
  return refusal.includes('revoked') ? 'mtls_certificate_revoked' : refusal.includes('retired') ? 'mtls_certificate_retired' : 'mtls_revocation_unknown';
}

import type { IncomingMessage } from 'node:http';
import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { PresentedCertificate } from './client-certificate.ts';
import { MTLS_OUTCOME_OF_REFUSAL, type CertificateRefusal } from '../kernel/certificate-refusal.ts';
import type { Finding } from '../kernel/finding.ts';
import { formatDistinguishedName } from '../pki/distinguished-name.ts';
import { ALL_FORWARDED_CERT_HEADERS } from '../pki/forwarded-certificate.ts';

/*
 * Why a TPP's call failed, in one word on its log line and in the metrics: a transport (mTLS)
 * failure is told apart from an OAuth error. oidc-provider answers every client-authentication
 * failure with the same `invalid_client` and "client authentication failed"; the operator needs the
 * cause, which Moat knows from the certificate it saw, and so does the TPP fixing its setup
 * (`moat diagnose` reads it). The TPP is told only about the certificate it presented itself — its
 * chain, validity, revocation and subject as the server saw them — never anything registered for
 * the client (the registered DN stays behind the registration access token, RFC 7592).
 */

export const MTLS_OUTCOMES = [
  'mtls_no_certificate',
  'mtls_untrusted_forwarder',
  'mtls_untrusted_chain',
  'mtls_expired',
  'mtls_not_yet_valid',
  'mtls_not_for_client_auth',
  'mtls_certificate_revoked',
  'mtls_certificate_retired',
  'mtls_revocation_unknown',
  'mtls_subject_mismatch',
  'mtls_thumbprint_mismatch',
] as const;

const MTLS_AUTH_METHODS = new Set(['tls_client_auth', 'self_signed_tls_client_auth']);
/** How oidc-provider begins every invalid_client description; Moat's causes follow it. */
const FAILED = 'client authentication failed';

/** A transport cause: the outcome logged, and what the TPP is told after "client authentication failed: ". */
interface MtlsCause {
  outcome: string;
  description: string;
}

export function createMtlsOutcomeMiddleware(deps: {
  provider: Provider;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  refusal: (req: IncomingMessage) => CertificateRefusal | undefined;
}): Middleware {
  return async (ctx, next) => {
    await next();
    if (ctx.status !== 401 || typeof ctx.state.outcome === 'string') return;
    const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
    if (body?.error !== 'invalid_client') return;
    const oidc = (ctx as { oidc?: { params?: { client_id?: unknown }; client?: { clientId: string } } }).oidc;
    const clientId = oidc?.client?.clientId ?? (typeof oidc?.params?.client_id === 'string' ? oidc.params.client_id : undefined);
    const client = clientId === undefined ? undefined : await deps.provider.Client.find(clientId).catch(() => undefined);
    const method = client?.metadata().token_endpoint_auth_method;
    if (method !== undefined && !MTLS_AUTH_METHODS.has(method)) return;
    const presented = deps.clientCertificate(ctx.req);
    const cause = classify(ctx.req, presented, deps) ?? (method === 'tls_client_auth' ? subjectMismatch(presented!) : undefined);
    if (cause === undefined) return;
    ctx.state.outcome = cause.outcome;
    if (cause.outcome === 'mtls_subject_mismatch') {
      // For the call's record (src/diagnostics): the registered DN is client data, shown only to that client.
      const registered = client?.metadata().tls_client_auth_subject_dn;
      ctx.state.finding = {
        got: formatDistinguishedName(presented!.subject),
        ...(typeof registered === 'string' ? { expected: registered, expectedIsClientData: true } : {}),
      } satisfies Finding;
    }
    // A self-signed client's certificate never chains: only a missing or refused one is worth words.
    const selfSignedChain = method === 'self_signed_tls_client_auth' && presented?.verification.trusted === false;
    if (!selfSignedChain && body.error_description === FAILED) {
      ctx.body = { ...body, error_description: `${FAILED}: ${cause.description}` };
    }
  };
}

function classify(
  req: IncomingMessage,
  presented: PresentedCertificate | undefined,
  deps: { refusal: (req: IncomingMessage) => CertificateRefusal | undefined },
): MtlsCause | undefined {
  if (presented === undefined) {
    return ALL_FORWARDED_CERT_HEADERS.some((h) => req.headers[h] !== undefined)
      ? {
          outcome: 'mtls_untrusted_forwarder',
          description: 'no client certificate was presented (a forwarded-certificate header from an address that is not a trusted gateway was ignored)',
        }
      : { outcome: 'mtls_no_certificate', description: 'no client certificate was presented in the TLS handshake' };
  }
  if (!presented.verification.trusted) {
    const outcome = {
      'untrusted-chain': 'mtls_untrusted_chain',
      expired: 'mtls_expired',
      'not-yet-valid': 'mtls_not_yet_valid',
      'not-for-client-auth': 'mtls_not_for_client_auth',
    }[presented.verification.reason];
    return { outcome, description: `the client certificate is not trusted: ${presented.verification.description}` };
  }
  const refusal = deps.refusal(req);
  if (refusal === undefined) return undefined;
  return { outcome: MTLS_OUTCOME_OF_REFUSAL[refusal.code], description: refusal.description };
}

/** RFC 8705 §2.1.2: the subject the server saw, which is the caller's own certificate's. */
function subjectMismatch(presented: PresentedCertificate): MtlsCause {
  return {
    outcome: 'mtls_subject_mismatch',
    description: `the client certificate's subject is not the tls_client_auth_subject_dn registered for this client; the server saw the subject ${formatDistinguishedName(presented.subject)}`,
  };
}

import type { ParameterizedContext } from 'koa';
import type { Finding } from '../kernel/finding.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import type { TrustAnchors } from '../pki/certificate-chain.ts';
import { formatDistinguishedName, issuerOf } from '../pki/distinguished-name.ts';

/*
 * What Moat saw of one TPP call, kept so the TPP can look it up by its x-fapi-interaction-id:
 * the certificate it presented, which check failed, and what was expected against what came.
 * The record is built once, at the end of the request, from what the request left behind
 * (ctx.state.outcome, ctx.state.finding and the response), so no route has to know about it.
 */

export type { Finding };

const CLIENT_AUTH_EKU = '1.3.6.1.5.5.7.3.2';

export interface CertificateSeen {
  via: 'tls' | 'forwarded';
  subject: string;
  issuer: string;
  serialNumber: string;
  'x5t#S256': string;
  notBefore: string;
  notAfter: string;
  chainTrusted: boolean;
  /** Why the chain is not trusted, when it is not. */
  problem?: string;
}

export interface FailedCheck {
  check: string;
  expected?: string;
  got?: string;
  expectedIsClientData?: boolean;
  /** What to do about it, in one sentence. */
  fix: string;
}

export interface CallRecord {
  interactionId: string;
  requestId: string;
  at: string;
  method: string;
  path: string;
  status: number;
  /** The outcome class of the request's log line: ok, an mtls_* transport failure, an OAuth error code… */
  outcome: string;
  error?: string;
  errorDescription?: string;
  clientId?: string;
  /**
   * The certificate presented is registered for clientId: the call was made by that client, not
   * merely in its name (anyone can send a client_id).
   */
  madeByClient?: boolean;
  certificate?: CertificateSeen;
  failed?: FailedCheck;
}

/** Moat's own pages and public documents: not TPP calls worth a record. */
const NOT_TPP_CALLS = /^\/(?:assets|interaction|account|portal|diagnostics|healthz|readyz|\.well-known|jwks)(?:\/|$)/;

export function isTppCall(path: string): boolean {
  return !NOT_TPP_CALLS.test(path);
}

export function describeCertificate(presented: PresentedCertificate): CertificateSeen {
  const { certificate, verification } = presented;
  return {
    via: presented.via,
    subject: formatDistinguishedName(presented.subject),
    issuer: formatDistinguishedName(issuerOf(certificate)),
    serialNumber: certificate.serialNumber.toLowerCase(),
    'x5t#S256': presented.thumbprint,
    notBefore: certificate.validFromDate.toISOString(),
    notAfter: certificate.validToDate.toISOString(),
    chainTrusted: verification.trusted,
    ...(verification.trusted ? {} : { problem: verification.description }),
  };
}

interface RecordInputs {
  ctx: ParameterizedContext;
  outcome: string;
  clientId?: string;
  madeByClient?: boolean;
  presented?: PresentedCertificate;
  anchors: TrustAnchors;
  now: Date;
}

export function buildCallRecord({ ctx, outcome, clientId, madeByClient, presented, anchors, now }: RecordInputs): CallRecord {
  const { requestId, interactionId } = ctx.state.requestContext as { requestId: string; interactionId: string };
  const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
  const error = ctx.status >= 400 && typeof body?.error === 'string' ? body.error : undefined;
  const errorDescription = error !== undefined && typeof body?.error_description === 'string' ? body.error_description : undefined;
  const record: CallRecord = {
    interactionId,
    requestId,
    at: now.toISOString(),
    method: ctx.method,
    path: ctx.path,
    status: ctx.status,
    outcome,
    ...(error === undefined ? {} : { error }),
    ...(errorDescription === undefined ? {} : { errorDescription }),
    ...(clientId === undefined ? {} : { clientId, madeByClient: madeByClient ?? false }),
    ...(presented === undefined ? {} : { certificate: describeCertificate(presented) }),
  };
  const failed = failedCheck(outcome, { presented, anchors, now, finding: ctx.state.finding as Finding | undefined, error, errorDescription });
  return failed === undefined ? record : { ...record, failed };
}

interface CheckInputs {
  presented: PresentedCertificate | undefined;
  anchors: TrustAnchors;
  now: Date;
  finding: Finding | undefined;
  error: string | undefined;
  errorDescription: string | undefined;
}

/** Which check failed, for each outcome class, with expected against got where Moat knows both. */
function failedCheck(outcome: string, inputs: CheckInputs): FailedCheck | undefined {
  const { presented, finding } = inputs;
  const certificate = presented?.certificate;
  const fromFinding = {
    ...(finding?.expected === undefined ? {} : { expected: finding.expected }),
    ...(finding?.got === undefined ? {} : { got: finding.got }),
    ...(finding?.expectedIsClientData === true ? { expectedIsClientData: true } : {}),
  };
  switch (outcome) {
    case 'mtls_no_certificate':
      return {
        check: 'a client certificate is presented',
        expected: 'the transport certificate in the TLS handshake',
        got: 'no certificate',
        fix: 'send the transport certificate and its key with the request (curl --cert transport.pem --key transport.key)',
      };
    case 'mtls_untrusted_forwarder':
      return {
        check: 'a client certificate is presented',
        expected: 'the transport certificate in the TLS handshake, or forwarded by a trusted gateway',
        got: 'a forwarded-certificate header from an address that is not a configured trusted gateway',
        fix: 'connect to Moat directly with the certificate, or through the gateway the bank configured',
      };
    case 'mtls_untrusted_chain':
      return {
        check: 'the certificate chains to a trust anchor',
        expected: `issued under one of: ${inputs.anchors.certificates.map((a) => a.subject.replaceAll('\n', ', ')).join('; ')}`,
        got:
          certificate === undefined
            ? 'no certificate'
            : `issued by ${formatDistinguishedName(issuerOf(certificate))}${presented?.verification.trusted === false ? ` (${presented.verification.description})` : ''}`,
        fix: 'use a transport certificate issued by one of the trust anchors, and send its intermediate CAs with it',
      };
    case 'mtls_expired':
    case 'mtls_not_yet_valid':
      return {
        check: 'the certificate and its chain are within their validity',
        expected: `valid at ${inputs.now.toISOString()}`,
        got:
          presented?.verification.trusted === false
            ? presented.verification.description
            : `valid from ${certificate?.validFromDate.toISOString()} to ${certificate?.validToDate.toISOString()}`,
        fix: 'renew the certificate (in the sandbox: moat sandbox tpp), register it, and send the new one',
      };
    case 'mtls_not_for_client_auth':
      return {
        check: 'the certificate may be used for TLS client authentication',
        expected: `extended key usage clientAuth (${CLIENT_AUTH_EKU})`,
        got: certificate === undefined ? 'no certificate' : `extended key usage ${certificate.keyUsage?.join(', ') ?? 'absent'}`,
        fix: 'use the transport certificate (clientAuth), not the signing certificate',
      };
    case 'mtls_certificate_revoked':
    case 'mtls_certificate_retired':
    case 'mtls_revocation_unknown':
      return {
        check: 'the certificate is in good standing',
        expected: 'an active certificate',
        got: inputs.errorDescription ?? outcome,
        fix: outcome === 'mtls_certificate_retired' ? 'send the certificate that replaced it' : 'obtain and register a new certificate',
      };
    case 'mtls_subject_mismatch':
      return {
        check: "the certificate's subject is the client's registered tls_client_auth_subject_dn",
        ...fromFinding,
        fix: 'send the certificate registered for this client, or update the registration (RFC 7592) with the new subject DN',
      };
    case 'mtls_thumbprint_mismatch':
      return {
        check: 'the access token is presented over the certificate it is bound to (RFC 8705 §3)',
        ...fromFinding,
        fix: 'call with the same certificate the token was issued to, or get a new token with this certificate',
      };
    case 'rate_limited':
      return {
        check: 'the request rate is within the limits',
        got: inputs.errorDescription ?? 'too many requests',
        fix: 'slow down: wait for the Retry-After interval',
      };
    case 'ok':
    case 'redirect':
      return undefined;
    default:
      if (inputs.error === undefined) return undefined;
      return {
        check: 'the request is valid',
        ...(inputs.errorDescription === undefined ? {} : { got: `${inputs.error}: ${inputs.errorDescription}` }),
        fix: 'correct the request as the error_description says',
      };
  }
}

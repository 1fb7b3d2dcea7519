import type { IncomingMessage } from 'node:http';
import type { Middleware } from 'koa';
import type { CertificateRefusal } from '../kernel/certificate-refusal.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import type { CertificateRegistry, CertificateStatus } from './certificate-registry.ts';

/*
 * Where the registry's verdict meets a request. oidc-provider asks "is this certificate authorised?"
 * synchronously (features.mTLS.certificateAuthorized), so an edge middleware looks the presented
 * certificate up first and the answer is read from the request. A revoked or retired certificate
 * authenticates nobody; with `failMode: closed` neither does one whose revocation status could not
 * be established.
 */

export interface CertificateGate {
  /** Looks up the presented certificate's registry status for the rest of the request. */
  middleware: Middleware;
  /** Why the presented certificate must be refused, or undefined. Synchronous. */
  refusal(req: IncomingMessage): CertificateRefusal | undefined;
  /** Whether a token bound to this thumbprint (RFC 8705 x5t#S256) may still be used. */
  bindingAlive(thumbprint: string): Promise<boolean>;
}

const verdicts = new WeakMap<IncomingMessage, CertificateRefusal | undefined>();

function refusalFor(status: { status: CertificateStatus; lastCheckResult?: string } | undefined, failMode: 'open' | 'closed'): CertificateRefusal | undefined {
  if (status === undefined) return undefined;
  if (status.status === 'revoked') return { code: 'revoked', description: 'the client certificate has been revoked' };
  if (status.status === 'retired') return { code: 'retired', description: 'the client certificate has been retired (replaced by a newer certificate)' };
  if (failMode === 'closed' && status.lastCheckResult?.startsWith('unknown') === true) {
    return { code: 'revocation_unknown', description: 'the revocation status of the client certificate cannot be established, and this server fails closed' };
  }
  return undefined;
}

export function createCertificateGate(deps: {
  registry: CertificateRegistry;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  failMode: 'open' | 'closed';
}): CertificateGate {
  return {
    middleware: async (ctx, next) => {
      const presented = deps.clientCertificate(ctx.req);
      if (presented !== undefined) verdicts.set(ctx.req, refusalFor(await deps.registry.statusOf(presented.thumbprint), deps.failMode));
      await next();
    },
    refusal: (req) => verdicts.get(req),
    async bindingAlive(thumbprint) {
      return refusalFor(await deps.registry.statusOf(thumbprint), deps.failMode) === undefined;
    },
  };
}

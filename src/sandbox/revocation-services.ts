import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Router from '@koa/router';
import { readRawBody } from '../http/read-body.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { Logger } from '../observability/logger.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import * as x509 from '../pki/x509.ts';
import { answerOcsp, buildCrl, type CaSigner } from './ca-services.ts';
import { importSigningKey } from './certificate-issuing.ts';
import type { SandboxMaterial } from './sandbox-material.ts';

/*
 * The sandbox TPP CA's revocation services, so a TPP can rehearse a revocation end to end: its CRL
 * and its OCSP responder (the sandbox's transport certificates point at both), and a revocation
 * request a TPP makes for its own certificate over mTLS (`moat sandbox revoke` sends it).
 */

export const SANDBOX_PKI_PATH = '/sandbox/pki';

export function sandboxRevocationPointers(issuer: string): { ocspUrl: string; crlUrl: string } {
  const base = `${issuer.replace(/\/$/, '')}${SANDBOX_PKI_PATH}`;
  return { ocspUrl: `${base}/ocsp`, crlUrl: `${base}/tpp-ca.crl` };
}

/** The certificates the sandbox TPP CA revoked (Postgres `sandbox_revoked_certificate`; src/storage/sql/sandbox-revocation-store.ts). */
export interface SandboxRevocationStore {
  /** Serial (lower-case hex) → when it was revoked. */
  revoked(): Promise<Map<string, Date>>;
  /** Revokes the serial; revoking it again changes nothing. */
  revoke(serial: string, reason: string): Promise<void>;
}

export function createSandboxRevocationRouter(deps: {
  material: SandboxMaterial;
  revocations: SandboxRevocationStore;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  logger: Logger;
}): Router {
  const router = new Router({ prefix: SANDBOX_PKI_PATH });
  const ca: CaSigner = { certificate: new x509.X509Certificate(deps.material.tppCaPem), key: importSigningKey(deps.material.tppCaKeyPem) };
  const caCertificate = new X509Certificate(deps.material.tppCaPem);
  const revoked = () => deps.revocations.revoked();

  router.get('/tpp-ca.crl', async (ctx) => {
    ctx.type = 'application/pkix-crl';
    ctx.set('Cache-Control', 'max-age=60');
    ctx.body = await buildCrl(ca, await revoked());
  });

  router.post('/ocsp', async (ctx) => {
    if (!ctx.is('application/ocsp-request')) throw new OAuthError('invalid_request', 'an OCSP request is application/ocsp-request (RFC 6960 Appendix A.1)');
    ctx.type = 'application/ocsp-response';
    ctx.body = await answerOcsp(ca, await readRawBody(ctx.req, 64 * 1024), await revoked());
  });

  // A TPP proves it holds the certificate by presenting it; the sandbox CA then revokes it.
  router.post('/revoke', async (ctx) => {
    const presented = deps.clientCertificate(ctx.req);
    if (presented === undefined) throw new OAuthError('invalid_client', 'present the sandbox certificate to revoke over mutual TLS');
    if (!presented.certificate.checkIssued(caCertificate) || !presented.certificate.verify(caCertificate.publicKey)) {
      throw new OAuthError('invalid_client', 'only certificates of the sandbox TPP CA can be revoked here');
    }
    const serial = presented.certificate.serialNumber.toLowerCase();
    await deps.revocations.revoke(serial, 'revoked by its holder');
    deps.logger.info({ event: 'sandbox.certificate_revoked', serial, thumbprint: presented.thumbprint }, 'sandbox CA revoked a TPP certificate');
    ctx.body = { revoked: serial, thumbprint: presented.thumbprint, note: 'Moat learns of it from the OCSP responder at the next certificate check' };
  });

  return router;
}

import type { IncomingMessage } from 'node:http';
import Router from '@koa/router';
import type { CertificateRegistry } from '../certificates/certificate-registry.ts';
import type { ExpiryNotices } from '../certificates/expiry-notices.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { CertificateRefusal } from '../kernel/certificate-refusal.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { DIAGNOSTICS_PATH } from './call-diagnostics.ts';

/*
 * The TPP's view of its certificates' lifecycle, over mutual TLS at /diagnostics/certificates:
 * every certificate registered for the clients the presented certificate belongs to, with the days
 * left, and each expiry notice Moat raised for them — delivered, pending (with the last error and
 * the next attempt) or not sent because no moat_notification_uri was registered.
 */

export function createExpiryNoticeDiagnosticsRouter(deps: {
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  refusal: (req: IncomingMessage) => CertificateRefusal | undefined;
  registry: CertificateRegistry;
  notices: ExpiryNotices;
  now?: () => Date;
}): Router {
  const now = deps.now ?? (() => new Date());
  const router = new Router();
  router.get(`${DIAGNOSTICS_PATH}/certificates`, async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const presented = deps.clientCertificate(ctx.req);
    if (presented === undefined)
      throw new OAuthError('invalid_client', 'present your transport certificate (mutual TLS): certificate notices are shown only to the clients they concern');
    // Only a trusted certificate in good standing speaks for the clients it is registered for.
    const clientIds =
      presented.verification.trusted && deps.refusal(ctx.req) === undefined ? ((await deps.registry.find(presented.thumbprint))?.clients ?? []) : [];
    if (clientIds.length === 0) throw new OAuthError('invalid_client', 'this certificate is not registered for any client in good standing');
    const seen = new Map<string, { thumbprint: string; usage: string; status: string; notAfter: string; daysLeft: number; clients: string[] }>();
    for (const clientId of clientIds) {
      for (const c of await deps.registry.list({ clientId })) {
        seen.set(c.thumbprint, {
          thumbprint: c.thumbprint,
          usage: c.usage,
          status: c.status,
          notAfter: c.notAfter.toISOString(),
          daysLeft: Math.floor((c.notAfter.getTime() - now().getTime()) / 86_400_000),
          clients: c.clients.filter((id) => clientIds.includes(id)),
        });
      }
    }
    const notices = await deps.notices.list({ clientIds });
    ctx.body = {
      certificates: [...seen.values()].sort((a, b) => a.notAfter.localeCompare(b.notAfter)),
      notices: notices.map((n) => ({
        'x5t#S256': n.thumbprint,
        clientId: n.clientId,
        horizonDays: n.horizonDays,
        daysLeft: n.daysLeft,
        status: n.status,
        attempts: n.attempts,
        raisedAt: n.createdAt.toISOString(),
        ...(n.deliveredAt === undefined ? {} : { deliveredAt: n.deliveredAt.toISOString() }),
        ...(n.status === 'pending' ? { nextAttemptAt: n.nextAttemptAt.toISOString() } : {}),
        ...(n.lastError === undefined ? {} : { lastError: n.lastError }),
        ...(n.endpoint === undefined ? {} : { endpoint: n.endpoint }),
      })),
    };
  });
  return router;
}

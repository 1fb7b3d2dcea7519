import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import Router from '@koa/router';
import Koa from 'koa';
import type { AuditLog } from '../audit/audit-log.ts';
import type { MetricsSource } from '../cluster/cluster.ts';
import { RestrictionNotFound, type ClientRestrictions, type RestrictionKind } from '../threats/client-restrictions.ts';
import { CERTIFICATE_STATUSES, type CertificateRegistry, type CertificateStatus } from '../certificates/certificate-registry.ts';
import { ConsentNotFound, ConsentStateConflict } from '../consents/consent.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { readJsonObject } from '../http/read-body.ts';
import { OAuthError } from '../http/oauth-error.ts';
import type { Logger } from '../observability/logger.ts';

/*
 * The admin listener: operations' side of Moat, apart from the public one (Ory Hydra's
 * public/admin split). Loopback by default; with `admin.tokenFile` every request needs that bearer
 * token. Prometheus metrics, and a JSON API over TPPs, certificates, consents and the audit log;
 * every change made here is audited as the operator's.
 */

export interface AdminServer {
  server: Server;
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

export interface AdminDependencies {
  metrics: MetricsSource;
  registry: CertificateRegistry;
  consents: ConsentService;
  audit: AuditLog;
  restrictions: ClientRestrictions;
  token?: string;
  logger: Logger;
}

export function createAdminServer(deps: AdminDependencies): AdminServer {
  const expected = deps.token === undefined ? undefined : createHash('sha256').update(deps.token).digest();
  const app = new Koa();
  const router = new Router();

  app.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    if (expected !== undefined) {
      const [scheme, value] = ctx.get('authorization').split(' ');
      const ok = scheme?.toLowerCase() === 'bearer' && value !== undefined && timingSafeEqual(createHash('sha256').update(value).digest(), expected);
      if (!ok) {
        ctx.status = 401;
        ctx.set('WWW-Authenticate', 'Bearer realm="moat-admin"');
        ctx.body = { error: 'invalid_token', error_description: 'the admin listener needs its bearer token' };
        return;
      }
    }
    try {
      await next();
    } catch (err) {
      if (err instanceof OAuthError) {
        ctx.status = err.status;
        ctx.body = { error: err.code, error_description: err.description };
      } else if (err instanceof ConsentNotFound || err instanceof RestrictionNotFound) {
        ctx.status = 404;
        ctx.body = { error: 'not_found', error_description: err.message };
      } else if (err instanceof ConsentStateConflict) {
        ctx.status = 409;
        ctx.body = { error: 'invalid_request', error_description: err.message };
      } else {
        deps.logger.error({ err, event: 'admin.error' }, 'admin request failed');
        ctx.status = 500;
        ctx.body = { error: 'server_error', error_description: 'the admin request failed; see the server log' };
      }
    }
    if (ctx.status === 404 && ctx.body === undefined) ctx.body = { error: 'not_found', error_description: `no admin endpoint ${ctx.method} ${ctx.path}` };
  });

  const adminAction = (action: string, detail: Record<string, unknown>) => deps.audit.record({ type: 'admin.action', actor: 'operator', actorId: 'admin-api', detail: { action, ...detail } });
  const bodyOf = async (ctx: Koa.Context): Promise<Record<string, unknown>> => (ctx.get('content-length') === '' || ctx.get('content-length') === '0' ? {} : readJsonObject(ctx.req));
  const reasonIn = (body: Record<string, unknown>) => {
    if (typeof body.reason !== 'string' || body.reason.trim() === '') throw new OAuthError('invalid_request', 'send {"reason": "..."}: it is recorded in the audit log');
    return body.reason.trim();
  };
  const reasonOf = async (ctx: Koa.Context) => reasonIn(await bodyOf(ctx));
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);

  router.get('/metrics', async (ctx) => {
    ctx.type = deps.metrics.contentType;
    ctx.body = await deps.metrics.metrics();
  });
  router.get('/healthz', (ctx) => { ctx.body = { status: 'ok' }; });

  router.get('/tpps', async (ctx) => { ctx.body = await deps.registry.organisations(); });

  router.get('/certificates', async (ctx) => {
    const status = text(ctx.query.status);
    if (status !== undefined && !(CERTIFICATE_STATUSES as readonly string[]).includes(status)) {
      throw new OAuthError('invalid_request', `status must be one of ${CERTIFICATE_STATUSES.join(', ')}`);
    }
    const list = await deps.registry.list({
      ...(text(ctx.query.org) === undefined ? {} : { orgId: text(ctx.query.org)! }),
      ...(text(ctx.query.client) === undefined ? {} : { clientId: text(ctx.query.client)! }),
      ...(status === undefined ? {} : { status: status as CertificateStatus }),
    });
    ctx.body = list.map(({ pem: _pem, issuerPem: _issuer, ...c }) => c);
  });
  router.get('/certificates/:thumbprint', async (ctx) => {
    const found = await deps.registry.find(ctx.params.thumbprint!);
    if (found === undefined) throw new OAuthError('not_found', `no certificate ${ctx.params.thumbprint}`);
    const { pem: _pem, issuerPem: _issuer, ...certificate } = found;
    ctx.body = { ...certificate, events: await deps.registry.events(found.thumbprint) };
  });
  router.post('/certificates/:thumbprint/revoke', async (ctx) => {
    const reason = await reasonOf(ctx);
    if (await deps.registry.find(ctx.params.thumbprint!) === undefined) throw new OAuthError('not_found', `no certificate ${ctx.params.thumbprint}`);
    const changed = await deps.registry.revoke(ctx.params.thumbprint!, { source: 'operator', reason });
    await adminAction('certificate.revoke', { thumbprint: ctx.params.thumbprint, reason, changed });
    ctx.body = { thumbprint: ctx.params.thumbprint, status: 'revoked', changed };
  });
  router.post('/certificates/:thumbprint/retire', async (ctx) => {
    const reason = await reasonOf(ctx);
    const changed = await deps.registry.retire(ctx.params.thumbprint!, reason);
    if (!changed) throw new OAuthError('invalid_request', 'only an active certificate can be retired');
    await adminAction('certificate.retire', { thumbprint: ctx.params.thumbprint, reason });
    ctx.body = { thumbprint: ctx.params.thumbprint, status: 'retired' };
  });

  router.get('/consents', async (ctx) => {
    const customer = text(ctx.query.customer);
    const client = text(ctx.query.client);
    if ((customer === undefined) === (client === undefined)) throw new OAuthError('invalid_request', 'filter by exactly one of customer or client');
    ctx.body = customer !== undefined ? await deps.consents.listForCustomer(customer) : await deps.consents.listForClient(client!);
  });
  router.post('/consents/:id/revoke', async (ctx) => {
    const reason = await reasonOf(ctx);
    const consent = await deps.consents.revoke(ctx.params.id!, { actor: 'operator', actorId: 'admin-api', reason });
    await adminAction('consent.revoke', { consentId: consent.id, reason });
    ctx.body = consent;
  });

  // Threat detection: what was flagged, and the restrictions on clients (quarantine, step-up).
  router.get('/threats/flags', async (ctx) => {
    const since = text(ctx.query.since);
    if (since !== undefined && Number.isNaN(new Date(since).getTime())) throw new OAuthError('invalid_request', 'since must be an ISO 8601 date-time');
    const limit = text(ctx.query.limit);
    if (limit !== undefined && !/^\d{1,4}$/.test(limit)) throw new OAuthError('invalid_request', 'limit must be a number up to 9999');
    ctx.body = await deps.restrictions.flags({
      ...(text(ctx.query.client) === undefined ? {} : { clientId: text(ctx.query.client)! }),
      ...(since === undefined ? {} : { since: new Date(since) }),
      ...(limit === undefined ? {} : { limit: Number(limit) }),
    });
  });
  router.get('/clients/restrictions', async (ctx) => {
    ctx.body = await deps.restrictions.list({
      ...(text(ctx.query.client) === undefined ? {} : { clientId: text(ctx.query.client)! }),
      includeReleased: ctx.query.all === '1' || ctx.query.all === 'true',
    });
  });
  router.post('/clients/:id/quarantine', async (ctx) => {
    const reason = await reasonOf(ctx);
    ctx.body = await deps.restrictions.quarantine(ctx.params.id!, reason, { actor: 'operator', actorId: 'admin-api' });
  });
  router.post('/clients/:id/step-up', async (ctx) => {
    const body = await bodyOf(ctx);
    const reason = reasonIn(body);
    const seconds = body.seconds ?? 86_400;
    if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > 30 * 86_400) {
      throw new OAuthError('invalid_request', 'seconds must be a whole number of seconds up to 30 days');
    }
    ctx.body = await deps.restrictions.stepUp(ctx.params.id!, reason, seconds, { actor: 'operator', actorId: 'admin-api' });
  });
  router.post('/clients/:id/release', async (ctx) => {
    const body = await bodyOf(ctx);
    const reason = reasonIn(body);
    const kind = body.kind ?? 'quarantine';
    if (kind !== 'quarantine' && kind !== 'step-up') throw new OAuthError('invalid_request', 'kind must be quarantine or step-up');
    const released = await deps.restrictions.release(ctx.params.id!, kind as RestrictionKind, 'admin-api');
    await adminAction(`client.release.${kind}`, { clientId: ctx.params.id, reason });
    ctx.body = released;
  });

  router.get('/audit', async (ctx) => {
    const date = (name: string) => {
      const value = text(ctx.query[name]);
      if (value === undefined) return undefined;
      const d = new Date(value);
      if (Number.isNaN(d.getTime())) throw new OAuthError('invalid_request', `${name} must be an ISO 8601 date-time`);
      return d;
    };
    const since = date('since');
    const until = date('until');
    ctx.body = await deps.audit.query({
      ...(text(ctx.query.client) === undefined ? {} : { clientId: text(ctx.query.client)! }),
      ...(text(ctx.query.org) === undefined ? {} : { orgId: text(ctx.query.org)! }),
      ...(text(ctx.query.customer) === undefined ? {} : { customerId: text(ctx.query.customer)! }),
      ...(text(ctx.query.type) === undefined ? {} : { type: text(ctx.query.type)! }),
      ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }),
      ...(text(ctx.query.limit) === undefined ? {} : { limit: Math.max(1, Number(text(ctx.query.limit)) || 100) }),
    });
  });
  router.get('/audit/verify', async (ctx) => { ctx.body = await deps.audit.verify(); });

  app.use(router.routes()).use(router.allowedMethods());
  const server = createServer(app.callback());
  return {
    server,
    listen: (host, port) => new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    }),
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

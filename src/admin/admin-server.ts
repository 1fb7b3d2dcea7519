import { createServer, type Server } from 'node:http';
import type { TotpFactor } from '../sca/totp-factor.ts';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import Router from '@koa/router';
import Koa from 'koa';
import type { AuditLog } from '../audit/audit-log.ts';
import type { MetricsSource } from '../cluster/cluster.ts';
import { RestrictionNotFound, type ClientRestrictions, type RestrictionKind } from '../threats/client-restrictions.ts';
import { CERTIFICATE_STATUSES, type CertificateRegistry, type CertificateStatus, type RegisteredCertificate } from '../certificates/certificate-registry.ts';
import { ConsentNotFound, ConsentStateConflict } from '../consents/consent.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import type { ExpiryNotices } from '../certificates/expiry-notices.ts';
import type { ConfigDescription } from '../config/config-description.ts';
import type { InstanceHeartbeat } from '../deployment/instance-heartbeat.ts';
import { readJsonObject } from '../http/read-body.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import { listenOn } from '../http/listen.ts';
import type { Logger } from '../observability/logger.ts';
import type { PasskeyStore } from '../passkeys/passkey-store.ts';
import { tlsServerOptions } from '../tls/https-server.ts';
import { createAdminRequestGuard, hasBody, type AdminHosts } from './admin-request-guard.ts';
import { AdminAuthenticationError, createOperatorAuthenticator, type AdminCredentials, type Operator } from './operator-authentication.ts';

/*
 * The admin listener: operations' side of Moat, apart from the public one (Ory Hydra's
 * public/admin split). Loopback by default; every request needs the bearer token (`admin.tokenFile`,
 * generated in the sandbox) or an operator certificate (`admin.tls`; operator-authentication.ts),
 * and first passes the checks against browsers (admin-request-guard.ts). Prometheus
 * metrics, and a JSON API over TPPs, certificates, consents and the audit log; every change made
 * here is audited under the operator's identity.
 */

export interface AdminServer {
  server: Server | TlsServer;
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

export interface AdminDependencies {
  metrics: MetricsSource;
  registry: CertificateRegistry;
  consents: ConsentService;
  audit: AuditLog;
  restrictions: ClientRestrictions;
  /** Customers' authentication factors, for the operator's reset (a lost phone). */
  factors?: { totp?: TotpFactor; customerExists(customerId: string): Promise<boolean> };
  /** Expiry notices to TPPs, when enabled: `GET /renewals` lists the TPPs that have not renewed. */
  notices?: ExpiryNotices;
  /** The warning horizons; the widest is the default window of `GET /renewals`. */
  expiryWarningDays?: readonly number[];
  /** The effective configuration (secrets as digests) and the deployment's instances, for `moat config plan`. */
  configuration?: { describe(): ConfigDescription; heartbeat: InstanceHeartbeat };
  passkeys: PasskeyStore;
  /** Token and/or operator mTLS (`loadAdminCredentials`); with `tls` the listener serves HTTPS. */
  credentials: AdminCredentials;
  /** The names the listener answers to (`admin.host`, `admin.allowedHosts`). */
  hosts: AdminHosts;
  logger: Logger;
}

interface AdminState {
  operator: Operator;
}

export function createAdminServer(deps: AdminDependencies): AdminServer {
  const authenticate = createOperatorAuthenticator(deps.credentials);
  const app = new Koa<AdminState>();
  const router = new Router<AdminState>();

  app.use(createAdminRequestGuard(deps.hosts, deps.logger));
  app.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      ctx.state.operator = await authenticate(ctx.req);
    } catch (err) {
      if (!(err instanceof AdminAuthenticationError)) throw err;
      deps.logger.warn({ event: 'admin.unauthorized', outcome: err.code, reason: err.description, remoteAddress: ctx.req.socket.remoteAddress, path: ctx.path }, 'admin request refused');
      ctx.status = err.status;
      if (deps.credentials.token !== undefined) ctx.set('WWW-Authenticate', 'Bearer realm="moat-admin"');
      ctx.body = { error: err.code, error_description: err.description };
      return;
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

  // Every change is audited as the operator who made it: certificate subject DN, or admin-token.
  type Context = Koa.ParameterizedContext<AdminState>;
  const by = (ctx: Context) => ({ actor: 'operator' as const, actorId: ctx.state.operator.id });
  const adminAction = (ctx: Context, action: string, detail: Record<string, unknown>) => deps.audit.record({ type: 'admin.action', ...by(ctx), detail: { action, ...detail } });
  const bodyOf = async (ctx: Context): Promise<Record<string, unknown>> => (hasBody(ctx) ? readJsonObject(ctx.req) : {});
  const reasonIn = (body: Record<string, unknown>) => {
    if (typeof body.reason !== 'string' || body.reason.trim() === '') throw new OAuthError('invalid_request', 'send {"reason": "..."}: it is recorded in the audit log');
    return body.reason.trim();
  };
  const reasonOf = async (ctx: Context) => reasonIn(await bodyOf(ctx));
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
    const within = text(ctx.query.expiringWithin);
    if (within !== undefined) {
      // Active certificates expiring within that many seconds, soonest first (`moat certs expiring`).
      if (!/^\d{1,10}$/.test(within)) throw new OAuthError('invalid_request', 'expiringWithin must be a number of seconds');
      if (status !== undefined || text(ctx.query.org) !== undefined || text(ctx.query.client) !== undefined) {
        throw new OAuthError('invalid_request', 'expiringWithin cannot be combined with other filters');
      }
      ctx.body = (await deps.registry.expiring(new Date(Date.now() + Number(within) * 1000))).map(withoutPem);
      return;
    }
    const list = await deps.registry.list({
      ...(text(ctx.query.org) === undefined ? {} : { orgId: text(ctx.query.org)! }),
      ...(text(ctx.query.client) === undefined ? {} : { clientId: text(ctx.query.client)! }),
      ...(status === undefined ? {} : { status: status as CertificateStatus }),
    });
    ctx.body = list.map(withoutPem);
  });
  router.get('/certificates/:thumbprint', async (ctx) => {
    const found = await deps.registry.find(ctx.params.thumbprint!);
    if (found === undefined) throw new OAuthError('not_found', `no certificate ${ctx.params.thumbprint}`);
    ctx.body = { ...withoutPem(found), events: await deps.registry.events(found.thumbprint) };
  });
  router.post('/certificates/:thumbprint/revoke', async (ctx) => {
    const reason = await reasonOf(ctx);
    if (await deps.registry.find(ctx.params.thumbprint!) === undefined) throw new OAuthError('not_found', `no certificate ${ctx.params.thumbprint}`);
    const changed = await deps.registry.revoke(ctx.params.thumbprint!, { source: 'operator', reason });
    await adminAction(ctx, 'certificate.revoke', { thumbprint: ctx.params.thumbprint, reason, changed });
    ctx.body = { thumbprint: ctx.params.thumbprint, status: 'revoked', changed };
  });
  router.post('/certificates/:thumbprint/retire', async (ctx) => {
    const reason = await reasonOf(ctx);
    const changed = await deps.registry.retire(ctx.params.thumbprint!, reason);
    if (!changed) throw new OAuthError('invalid_request', 'only an active certificate can be retired');
    await adminAction(ctx, 'certificate.retire', { thumbprint: ctx.params.thumbprint, reason });
    ctx.body = { thumbprint: ctx.params.thumbprint, status: 'retired' };
  });

  // Which TPPs have not renewed: certificates expiring within the window (seconds; default the
  // widest warning horizon) with no later one registered for their clients, and what each was told.
  router.get('/renewals', async (ctx) => {
    if (deps.notices === undefined) throw new OAuthError('not_found', 'expiry notices are disabled (certificates.expiryNotices.enabled)');
    const within = text(ctx.query.within);
    if (within !== undefined && !/^\d{1,10}$/.test(within)) throw new OAuthError('invalid_request', 'within must be a number of seconds');
    const seconds = within === undefined ? Math.max(0, ...(deps.expiryWarningDays ?? [30])) * 86_400 : Number(within);
    ctx.body = await deps.notices.unrenewed(new Date(Date.now() + seconds * 1000));
  });

  // Configuration as code: this instance's effective configuration, key by key (a secret as a
  // digest salted per answer, never its value), and which configurations the deployment runs.
  router.get('/config', (ctx) => {
    if (deps.configuration === undefined) throw new OAuthError('not_found', 'no configuration description on this listener');
    ctx.body = { instanceId: deps.configuration.heartbeat.instanceId, ...deps.configuration.describe() };
  });
  router.get('/config/instances', async (ctx) => {
    if (deps.configuration === undefined) throw new OAuthError('not_found', 'no configuration description on this listener');
    const instances = await deps.configuration.heartbeat.live();
    ctx.body = { configHash: deps.configuration.heartbeat.configHash, drift: new Set(instances.map((i) => i.configHash)).size > 1, instances };
  });

  router.get('/consents', async (ctx) => {
    const customer = text(ctx.query.customer);
    const client = text(ctx.query.client);
    if ((customer === undefined) === (client === undefined)) throw new OAuthError('invalid_request', 'filter by exactly one of customer or client');
    ctx.body = customer !== undefined ? await deps.consents.listForCustomer(customer) : await deps.consents.listForClient(client!);
  });
  router.post('/consents/:id/revoke', async (ctx) => {
    const reason = await reasonOf(ctx);
    const consent = await deps.consents.revoke(ctx.params.id!, { ...by(ctx), reason });
    await adminAction(ctx, 'consent.revoke', { consentId: consent.id, reason });
    ctx.body = consent;
  });

  // A customer lost the device with their authenticator app: the operator removes the factor
  // (audited as factor.reset with the operator and the reason) and the customer enrols a new one.
  /** Answers 404 for a customer the bank does not have: a typo must not look like a reset that found nothing. */
  const unknownCustomer = async (ctx: Koa.Context, customerId: string): Promise<boolean> => {
    if (deps.factors === undefined || await deps.factors.customerExists(customerId)) return false;
    ctx.status = 404;
    ctx.body = { error: 'not_found', error_description: `customer ${customerId} does not exist` };
    return true;
  };

  router.post('/customers/:id/factors/totp/reset', async (ctx) => {
    const reason = await reasonOf(ctx);
    const customerId = ctx.params.id!;
    if (deps.factors?.totp === undefined) throw new OAuthError('invalid_request', 'one-time codes are not enabled (sca.totp.enabled)');
    if (await unknownCustomer(ctx, customerId)) return;
    const removed = await deps.factors.totp.remove(customerId, { ...by(ctx), reason });
    ctx.body = { customerId, factor: 'totp', removed };
  });

  // A customer who lost their device: every passkey removed, so only the bank's recovery path signs them in.
  router.post('/customers/:id/factors/passkeys/reset', async (ctx) => {
    const reason = await reasonOf(ctx);
    const customerId = ctx.params.id!;
    if (await unknownCustomer(ctx, customerId)) return;
    const removed = await deps.passkeys.removeAll(customerId);
    await deps.audit.record({ type: 'factor.reset', ...by(ctx), customerId, detail: { factor: 'passkey', removed, reason } });
    ctx.body = { customerId, factor: 'passkey', removed };
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
    ctx.body = await deps.restrictions.quarantine(ctx.params.id!, reason, by(ctx));
  });
  router.post('/clients/:id/step-up', async (ctx) => {
    const body = await bodyOf(ctx);
    const reason = reasonIn(body);
    const seconds = body.seconds ?? 86_400;
    if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1 || seconds > 30 * 86_400) {
      throw new OAuthError('invalid_request', 'seconds must be a whole number of seconds up to 30 days');
    }
    ctx.body = await deps.restrictions.stepUp(ctx.params.id!, reason, seconds, by(ctx));
  });
  router.post('/clients/:id/release', async (ctx) => {
    const body = await bodyOf(ctx);
    const reason = reasonIn(body);
    const kind = body.kind ?? 'quarantine';
    if (kind !== 'quarantine' && kind !== 'step-up') throw new OAuthError('invalid_request', 'kind must be quarantine or step-up');
    const released = await deps.restrictions.release(ctx.params.id!, kind as RestrictionKind, ctx.state.operator.id);
    await adminAction(ctx, `client.release.${kind}`, { clientId: ctx.params.id, reason });
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
  const tls = deps.credentials.tls;
  // With operator mTLS: Moat's TLS policy, asking for a client certificate with the operator CAs as
  // the CA list; the handshake never decides, the authenticator above does (and says why).
  const server = tls === undefined ? createServer(app.callback()) : createTlsServer(tlsServerOptions({ cert: tls.cert, key: tls.key, ca: tls.anchors.pem }), app.callback());
  return {
    server,
    listen: (host, port) => listenOn(server, 'admin', host, port),
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

/** A certificate as the admin API shows it: never its PEM (nor its issuer's). */
function withoutPem({ pem: _pem, issuerPem: _issuer, ...certificate }: RegisteredCertificate): Omit<RegisteredCertificate, 'pem' | 'issuerPem'> {
  return certificate;
}

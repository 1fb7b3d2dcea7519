import Router from '@koa/router';
import Koa from 'koa';
import mount from 'koa-mount';
import type Provider from 'oidc-provider';
import type { MoatConfig } from './config/schema.ts';
import type { CustomerDirectory } from './customers/customer-directory.ts';
import type { AccountDirectory } from './customers/account-directory.ts';
import type { LoginThrottle } from './customers/login-throttle.ts';
import type { ConsentService } from './consents/consent-service.ts';
import { createDashboardRouter } from './dashboard/routes.ts';
import { createPasskeyDashboardRouter, dashboardPasskeyOffer } from './dashboard/passkey-routes.ts';
import type { AuditLog } from './audit/audit-log.ts';
import type { PasskeyCeremonies } from './passkeys/passkey-ceremonies.ts';
import type { PasskeyStore } from './passkeys/passkey-store.ts';
import type { CustomerSessions } from './dashboard/customer-sessions.ts';
import type { Csrf } from './http/csrf.ts';
import { answerForwardedHeadersBy, requireHttpsBehindGateway } from './http/forwarded-request.ts';
import { requestContextMiddleware } from './http/request-context-middleware.ts';
import { securityHeaders } from './http/security-headers.ts';
import { createInteractionRouter, type InteractionSca } from './interactions/routes.ts';
import { notReadyResponse, writeErrorResponse } from './kernel/error-responses.ts';
import type { FederatedLogin } from './interactions/federated-login.ts';
import type { Views } from './interactions/views.ts';
import type { Logger } from './observability/logger.ts';
import { createTrustedProxies } from './tls/trusted-proxies.ts';
import type { Middleware } from 'koa';

/**
 * The public listener's health routes, for orchestrators: liveness answers as soon as the process
 * serves; readiness only while Postgres and Redis answer and no migration is pending. The
 * deployment manifests (deploy/helm, docker-compose.yml) probe exactly these.
 */
export const HEALTH_PATHS = { liveness: '/healthz', readiness: '/readyz' } as const;

export interface AppDependencies {
  config: MoatConfig;
  provider: Provider;
  customers: CustomerDirectory;
  accounts: AccountDirectory;
  consents: ConsentService;
  customerSessions: CustomerSessions;
  csrf: Csrf;
  loginThrottle: LoginThrottle;
  /** Strong customer authentication for the interaction and the dashboard. */
  sca: InteractionSca;
  views: Views;
  logger: Logger;
  audit: AuditLog;
  passkeys: { store: PasskeyStore; ceremonies: PasskeyCeremonies };
  cookieKeys: string[];
  /** Sign-in at the bank's OpenID Provider (customers.source: oidc). */
  federatedLogin?: FederatedLogin;
  /** Readiness: resolves when every backend answers and migrations are applied. */
  ready: () => Promise<void>;
  /** Further routers (the consent API, the sandbox API). */
  routers?: Router[];
  /** Runs after every request, before its response is sent (the TPP call records). */
  afterRequest?: (ctx: Parameters<Middleware>[0], outcome: string) => Promise<void>;
  /** Middleware at the edge, before every route (the certificate registry gate). */
  edge?: Middleware[];
  /** Middleware that runs before oidc-provider on its routes (registration policy, certificate logging). */
  beforeProvider?: Middleware[];
}

/**
 * The Koa application: Moat's own routes around oidc-provider. It never listens; main.ts (or a
 * test) puts it behind the TLS server.
 */
export function createApp(deps: AppDependencies): Koa {
  const app = new Koa();
  // Signs oidc-provider's cookies too: when mounted, the outer app's keys are the ones used.
  app.keys = deps.cookieKeys;
  // The client's address and scheme: from a trusted proxy's forwarded headers, else the connection's.
  const proxies = createTrustedProxies(deps.config.trustedProxies.addresses);
  answerForwardedHeadersBy(app, proxies);

  app.use(requestContextMiddleware(deps.logger, deps.afterRequest));
  app.use(securityHeaders());
  for (const middleware of deps.edge ?? []) app.use(middleware);
  // Behind a gateway Moat speaks plain HTTP; only what a trusted proxy forwarded as https is served.
  if (!deps.config.tls.terminate) app.use(requireHttpsBehindGateway(proxies, Object.values(HEALTH_PATHS)));

  const own = new Router();
  own.get(HEALTH_PATHS.liveness, (ctx) => {
    ctx.body = { status: 'ok' };
  });
  own.get(HEALTH_PATHS.readiness, async (ctx) => {
    try {
      await deps.ready();
      ctx.body = { status: 'ready' };
    } catch (err) {
      deps.logger.warn({ err, event: 'readiness.failed' }, 'not ready');
      writeErrorResponse(ctx, notReadyResponse());
    }
  });
  own.get('/assets/moat.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = deps.views.stylesheet;
  });
  own.get('/assets/brand.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = deps.views.brandStylesheet;
  });
  for (const script of [deps.views.passkeyScript, deps.views.sessionTimerScript]) {
    own.get(script.path, (ctx) => {
      ctx.type = 'application/javascript';
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.body = script.body;
    });
  }
  const { logo } = deps.views;
  if (logo !== undefined) {
    own.get('/assets/logo', (ctx) => {
      ctx.type = logo.type;
      ctx.set('Cache-Control', 'public, max-age=3600');
      // An SVG opened directly must not run script on Moat's origin.
      ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; sandbox");
      ctx.body = logo.body;
    });
  }
  app.use(own.routes());

  const interactions = createInteractionRouter({
    provider: deps.provider,
    customers: deps.customers,
    accounts: deps.accounts,
    consents: deps.consents,
    views: deps.views,
    config: deps.config,
    logger: deps.logger,
    csrf: deps.csrf,
    throttle: deps.loginThrottle,
    sca: deps.sca,
    passkeys: deps.passkeys,
    ...(deps.federatedLogin === undefined ? {} : { federated: deps.federatedLogin }),
  });
  if (deps.federatedLogin !== undefined) app.use(deps.federatedLogin.router.routes()).use(deps.federatedLogin.router.allowedMethods());
  app.use(interactions.routes());
  app.use(interactions.allowedMethods());
  const dashboard = createDashboardRouter({
    provider: deps.provider,
    customers: deps.customers,
    accounts: deps.accounts,
    consents: deps.consents,
    sessions: deps.customerSessions,
    views: deps.views,
    csrf: deps.csrf,
    throttle: deps.loginThrottle,
    config: deps.config,
    logger: deps.logger,
    sca: deps.sca,
    passkeyOffer: (ctx) => dashboardPasskeyOffer(ctx, { ceremonies: deps.passkeys.ceremonies, views: deps.views, csrf: deps.csrf }),
    ...(deps.federatedLogin === undefined ? {} : { federatedSignIn: deps.federatedLogin.beginDashboard }),
  });
  app.use(dashboard.routes());
  app.use(dashboard.allowedMethods());
  const passkeyDashboard = createPasskeyDashboardRouter({
    customers: deps.customers,
    sessions: deps.customerSessions,
    ceremonies: deps.passkeys.ceremonies,
    store: deps.passkeys.store,
    views: deps.views,
    csrf: deps.csrf,
    audit: deps.audit,
    logger: deps.logger,
    ...(deps.sca.totp === undefined ? {} : { totp: deps.sca.totp }),
  });
  app.use(passkeyDashboard.routes());
  app.use(passkeyDashboard.allowedMethods());

  for (const router of deps.routers ?? []) app.use(router.routes()).use(router.allowedMethods());
  for (const middleware of deps.beforeProvider ?? []) app.use(middleware);
  // oidc-provider 9 is itself a Koa app; mounting composes its middleware into this one.
  app.use(mount(deps.provider));
  return app;
}

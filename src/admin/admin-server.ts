import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import Router from '@koa/router';
import Koa from 'koa';
import { ConsentNotFound, ConsentStateConflict } from '../consents/consent.ts';
import { listenOn } from '../http/listen.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { Logger } from '../observability/logger.ts';
import { RestrictionNotFound } from '../threats/client-restrictions.ts';
import { tlsServerOptions } from '../tls/https-server.ts';
import { adminOpenApi } from './admin-openapi.ts';
import { createAdminRequestGuard, type AdminHosts } from './admin-request-guard.ts';
import { AnswerOutOfContract, mountAdminRoutes } from './admin-route.ts';
import { ADMIN_ROUTES, type AdminServices } from './admin-routes.ts';
import { AdminAuthenticationError, createOperatorAuthenticator, type AdminCredentials, type Operator } from './operator-authentication.ts';

/*
 * The admin listener: operations' side of Moat, apart from the public one (Ory Hydra's
 * public/admin split). Loopback by default; every request needs the bearer token (`admin.tokenFile`,
 * generated in the sandbox) or an operator certificate (`admin.tls`; operator-authentication.ts),
 * and first passes the checks against browsers (admin-request-guard.ts). Prometheus
 * metrics, and a JSON API over TPPs, certificates, consents and the audit log (admin-routes.ts;
 * its OpenAPI document at GET /openapi.json); every change made here is audited under the
 * operator's identity.
 */

export interface AdminServer {
  server: Server | TlsServer;
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

export interface AdminDependencies extends AdminServices {
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
      } else if (err instanceof AnswerOutOfContract) {
        // A bug, not the caller's fault: the answer would have broken the published contract.
        deps.logger.error({ err, event: 'admin.answer_out_of_contract' }, 'admin answer outside its schema');
        ctx.status = 500;
        ctx.body = { error: 'server_error', error_description: 'the admin request failed; see the server log' };
      } else {
        deps.logger.error({ err, event: 'admin.error' }, 'admin request failed');
        ctx.status = 500;
        ctx.body = { error: 'server_error', error_description: 'the admin request failed; see the server log' };
      }
    }
    if (ctx.status === 404 && ctx.body === undefined) ctx.body = { error: 'not_found', error_description: `no admin endpoint ${ctx.method} ${ctx.path}` };
  });

  router.get('/openapi.json', (ctx) => { ctx.body = adminOpenApi(); });
  mountAdminRoutes(router, ADMIN_ROUTES, deps);

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

import { createServer, type Server } from 'node:http';
import type { Server as TlsServer } from 'node:https';
import Router from '@koa/router';
import Koa from 'koa';
import { listenOn } from '../http/listen.ts';
import { trackConnections } from '../http/listener-connections.ts';
import { oauthErrorResponse, serverErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { Logger } from '../observability/logger.ts';
import { createHttpsServer } from '../tls/https-server.ts';
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
      deps.logger.warn(
        { event: 'admin.unauthorized', outcome: err.code, reason: err.description, remoteAddress: ctx.req.socket.remoteAddress, path: ctx.path },
        'admin request refused',
      );
      writeErrorResponse(ctx, oauthErrorResponse(err, deps.credentials.token === undefined ? {} : { challenge: 'Bearer realm="moat-admin"' }));
      return;
    }
    try {
      await next();
    } catch (err) {
      // An answer out of contract is a bug, not the caller's fault: it would break the published contract.
      const known = err instanceof AnswerOutOfContract ? undefined : oauthErrorResponse(err, { stateConflictStatus: 409 });
      if (known === undefined) {
        deps.logger.error(
          { err, event: err instanceof AnswerOutOfContract ? 'admin.answer_out_of_contract' : 'admin.error' },
          err instanceof AnswerOutOfContract ? 'admin answer outside its schema' : 'admin request failed',
        );
      }
      writeErrorResponse(ctx, known ?? serverErrorResponse('the admin request failed; see the server log'));
    }
    if (ctx.status === 404 && ctx.body === undefined)
      writeErrorResponse(ctx, oauthErrorResponse(new OAuthError('not_found', `no admin endpoint ${ctx.method} ${ctx.path}`)));
  });

  router.get('/openapi.json', (ctx) => {
    ctx.body = adminOpenApi();
  });
  mountAdminRoutes(router, ADMIN_ROUTES, deps);

  app.use(router.routes()).use(router.allowedMethods());
  const tls = deps.credentials.tls;
  // With operator mTLS: Moat's TLS policy, asking for a client certificate with the operator CAs as
  // the CA list; the handshake never decides, the authenticator above does (and says why).
  const server =
    tls === undefined ? createServer(app.callback()) : createHttpsServer({ cert: tls.cert, key: tls.key, ca: tls.anchors.pem, handler: app.callback() });
  const connections = trackConnections(server);
  return {
    server,
    listen: (host, port) => listenOn(server, 'admin', host, port),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Every connection, those Node's closeAllConnections cannot reach included (listener-connections.ts).
        connections.closeAll();
      }),
  };
}

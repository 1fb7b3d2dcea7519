import { timingSafeEqual, createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';

/*
 * The admin listener: operations' side of Moat, apart from the public one (Ory Hydra's
 * public/admin split). Loopback by default; with `admin.tokenFile` every request needs that bearer
 * token. Today it serves Prometheus metrics and its own health.
 */

export interface AdminServer {
  server: Server;
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

export function createAdminServer(deps: { metrics: Registry; token?: string; logger: Logger }): AdminServer {
  const expected = deps.token === undefined ? undefined : createHash('sha256').update(deps.token).digest();
  const authorised = (header: string | undefined) => {
    if (expected === undefined) return true;
    const [scheme, value] = (header ?? '').split(' ');
    if (scheme?.toLowerCase() !== 'bearer' || value === undefined) return false;
    return timingSafeEqual(createHash('sha256').update(value).digest(), expected);
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (!authorised(req.headers.authorization)) {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="moat-admin"', 'content-type': 'application/json' }).end('{"error":"invalid_token","error_description":"the admin listener needs its bearer token"}');
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      deps.metrics.metrics().then((text) => {
        res.writeHead(200, { 'content-type': deps.metrics.contentType, 'cache-control': 'no-store' }).end(text);
      }, (err: unknown) => {
        deps.logger.warn({ err, event: 'metrics.failed' }, 'collecting metrics failed');
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"temporarily_unavailable","error_description":"metrics could not be collected"}');
      });
      return;
    }
    if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
  });
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

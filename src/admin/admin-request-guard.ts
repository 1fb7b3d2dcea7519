import type { Context, Middleware } from 'koa';
import { oauthErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { Logger } from '../observability/logger.ts';

/*
 * What a browser can do to a listener it can reach — one on loopback, for a page open on the
 * operator's host — and the admin listener refuses: a DNS-rebound name (the page's own host name,
 * now resolving to the listener) to read its answers, and a cross-site request ("simple" POSTs of
 * text/plain need no CORS preflight) to act. So before anyone is authenticated: the Host must be
 * one of the listener's own names, a request that carries an Origin (every browser adds it to
 * cross-origin and form requests; operators' tools never send one) is refused, and a body must be
 * JSON, which no page can send cross-site without a preflight the listener never answers.
 */

export interface AdminHosts {
  /** `admin.host`: where the listener binds; a name or address it answers to unless a wildcard. */
  host: string;
  /** `admin.allowedHosts`: further names, such as a Kubernetes Service's. */
  allowedHosts: readonly string[];
}

export type AdminRequestRefusal = 'misdirected_request' | 'cross_origin_request' | 'unsupported_media_type';

/** Loopback by name and address: the CLI's and a port-forward's Host. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];
const WILDCARDS = ['0.0.0.0', '::', ''];

/** A host name or address as compared: lower case, no IPv6 brackets, no trailing dot, IPv4 not IPv6-mapped. */
function normalizedHost(name: string): string {
  return name
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
    .replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
}

/** Whether a request carries a body (declared by its length or sent chunked). */
export function hasBody(ctx: Context): boolean {
  return ctx.get('transfer-encoding') !== '' || (ctx.request.length ?? 0) > 0;
}

export function createAdminRequestGuard(hosts: AdminHosts, logger: Logger): Middleware {
  const names = new Set([...LOOPBACK_NAMES, ...(WILDCARDS.includes(hosts.host) ? [] : [hosts.host]), ...hosts.allowedHosts].map(normalizedHost));
  const refuse = (ctx: Context, code: AdminRequestRefusal, description: string, header: string) => {
    logger.warn({ event: 'admin.refused', outcome: code, header, remoteAddress: ctx.req.socket.remoteAddress, path: ctx.path }, 'admin request refused');
    ctx.set('Cache-Control', 'no-store');
    writeErrorResponse(ctx, oauthErrorResponse(new OAuthError(code, description)));
  };
  return async function refuseBrowserRequests(ctx, next) {
    // Koa reads Host itself (X-Forwarded-Host only behind app.proxy, never set here); '' when absent.
    const host = normalizedHost(ctx.hostname);
    // The address the connection came in on: an IP literal is no name a rebinding page controls.
    const local = normalizedHost(ctx.req.socket.localAddress ?? '');
    if (host === '' || !(names.has(host) || host === local)) {
      refuse(
        ctx,
        'misdirected_request',
        `the admin listener answers only to its own names (localhost, 127.0.0.1, [::1], admin.host, admin.allowedHosts, or the address it was reached on), not Host "${ctx.host.slice(0, 100)}"`,
        'host',
      );
      return;
    }
    if (ctx.get('origin') !== '') {
      refuse(
        ctx,
        'cross_origin_request',
        'the admin listener refuses requests made by web pages (they carry an Origin header); use the moat CLI or an HTTP client',
        'origin',
      );
      return;
    }
    if (hasBody(ctx) && ctx.is('application/json') === false) {
      refuse(ctx, 'unsupported_media_type', 'the admin API takes request bodies as Content-Type: application/json', 'content-type');
      return;
    }
    await next();
  };
}

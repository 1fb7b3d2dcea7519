import type Koa from 'koa';
import type { Middleware } from 'koa';
import { DomainError } from '../kernel/domain-error.ts';
import { oauthErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import type { TrustedProxies } from '../tls/trusted-proxies.ts';

/*
 * What Koa (and oidc-provider, which runs on the same context) take as the client's address and
 * scheme. Koa's `app.proxy = true` believes X-Forwarded-For and X-Forwarded-Proto from whoever
 * reaches the port, so a caller going around the gateway could pick its address (dodging per-address
 * rate limits, the sign-in throttle and threat signals) and its scheme. Instead `ctx.ip` and
 * `ctx.protocol` (hence `ctx.secure`, the Secure cookies, `ctx.href`) are answered by the
 * trusted-proxy rule of src/tls/trusted-proxies.ts. `app.request` is the prototype Koa documents for
 * extending requests; this is the one place Moat overrides two of its getters. The host is always the
 * Host header: X-Forwarded-Host is not read (a gateway passes Host on: nginx `proxy_set_header Host`).
 */

export function answerForwardedHeadersBy(app: Koa, proxies: TrustedProxies): void {
  app.proxy = false;
  Object.defineProperties(app.request, {
    ip: {
      configurable: true,
      get(this: Koa.Request) {
        return proxies.clientAddress(this.req);
      },
    },
    protocol: {
      configurable: true,
      get(this: Koa.Request) {
        return proxies.scheme(this.req);
      },
    },
  });
}

/**
 * Behind a gateway Moat listens on plain HTTP, and everything but the health probes must have come
 * over https through a trusted proxy: what did not — a caller going around the gateway, a gateway
 * forwarding plain http — gets a 400 saying so, rather than a page whose Secure cookies cannot be
 * set (a 500) or a flow over an unencrypted connection.
 */
export function requireHttpsBehindGateway(proxies: TrustedProxies, exemptPaths: readonly string[]): Middleware {
  return async (ctx, next) => {
    if (ctx.secure || exemptPaths.includes(ctx.path)) return next();
    ctx.set('Cache-Control', 'no-store');
    writeErrorResponse(
      ctx,
      oauthErrorResponse(
        new DomainError(
          'invalid_input',
          proxies.peerIsTrusted(ctx.req)
            ? 'the gateway forwarded a plain-http request (X-Forwarded-Proto): Moat is served over https only'
            : "this port serves the bank's gateway (trustedProxies) only: send the request over https through the gateway",
        ),
      ),
    );
  };
}

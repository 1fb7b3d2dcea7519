import type { Middleware } from 'koa';

/**
 * FAPI 2.0 SP §5.2.1 asks for HSTS on browser-facing endpoints; the rest is the usual hardening of
 * server-rendered pages: no framing, no sniffing, no referrer carrying a code to a third party.
 */
export function securityHeaders(): Middleware {
  return async (ctx, next) => {
    // Set before next(): oidc-provider writes some responses (redirects after interactions) itself.
    ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    await next();
    if (ctx.response.is('html') !== false) {
      // No form-action: browsers apply it to the redirect after the consent POST, which goes to the TPP.
      // img-src https: only for a TPP's registered logo_uri on the consent page; no script anywhere.
      ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'self'; img-src 'self' data: https:; frame-ancestors 'none'; base-uri 'none'");
      ctx.set('X-Frame-Options', 'DENY');
    }
  };
}

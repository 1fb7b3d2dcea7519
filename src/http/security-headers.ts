import { randomBytes } from 'node:crypto';
import type { Middleware, ParameterizedContext } from 'koa';

const SCRIPT_NONCE = 'moatScriptNonce';

/**
 * Lets this response's page run the scripts that carry the returned nonce (CSP Level 3 §6.7.3.2):
 * a fresh random nonce per response, so nothing injected into a page can guess it. Pages that never
 * call this run no script at all.
 */
export function allowScript(ctx: ParameterizedContext): string {
  const existing = ctx.state[SCRIPT_NONCE] as string | undefined;
  if (existing !== undefined) return existing;
  const nonce = randomBytes(18).toString('base64');
  ctx.state[SCRIPT_NONCE] = nonce;
  return nonce;
}

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
      // img-src https: only for a TPP's registered logo_uri on the consent page; no script unless the
      // page asked for its nonce (the passkey pages), and then only the script carrying it.
      const nonce = ctx.state[SCRIPT_NONCE] as string | undefined;
      const script = nonce === undefined ? '' : ` script-src 'nonce-${nonce}';`;
      ctx.set('Content-Security-Policy', `default-src 'none';${script} style-src 'self'; img-src 'self' data: https:; frame-ancestors 'none'; base-uri 'none'`);
      ctx.set('X-Frame-Options', 'DENY');
    }
  };
}

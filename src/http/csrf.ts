import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ParameterizedContext } from 'koa';
import { FormRefused } from '../kernel/form-refused.ts';

/*
 * CSRF protection for every form Moat renders: a signed double-submit token (OWASP CSRF cheat
 * sheet). The browser holds a random secret in a __Host- cookie; each form carries
 * HMAC(server key, secret | purpose), so a token is useless in another browser or for another form.
 * The Origin header, when the browser sends one, must be Moat's own as a second check.
 */

export const CSRF_COOKIE = '__Host-moat-csrf';
export const CSRF_FIELD = 'csrf';
const ISSUED_SECRET = 'moatCsrfIssuedSecret';

export interface Csrf {
  /** The token to put in the form's hidden `csrf` field; sets the cookie when the browser has none. */
  token(ctx: ParameterizedContext, purpose: string): string;
  /** Throws invalid_request unless the submitted token matches this browser and purpose. */
  verify(ctx: ParameterizedContext, purpose: string, submitted: string | undefined): void;
}

export function createCsrf(options: { keys: string[]; origin: string }): Csrf {
  const [signingKey] = options.keys;
  if (signingKey === undefined) throw new Error('CSRF protection needs a key');
  const sign = (key: string, secret: string, purpose: string) => createHmac('sha256', `moat-csrf:${key}`).update(`${secret}|${purpose}`).digest('base64url');
  const cookieSecret = (ctx: ParameterizedContext) => {
    const value = ctx.cookies.get(CSRF_COOKIE);
    return value !== undefined && /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined;
  };
  return {
    token(ctx, purpose) {
      // A page with two forms asks twice before the browser has the cookie: one secret per response.
      let secret = cookieSecret(ctx) ?? (ctx.state[ISSUED_SECRET] as string | undefined);
      if (secret === undefined) {
        secret = randomBytes(32).toString('base64url');
        ctx.state[ISSUED_SECRET] = secret;
        // Lax: the customer arrives at the first page by a redirect from the TPP's site.
        ctx.cookies.set(CSRF_COOKIE, secret, { httpOnly: true, secure: true, sameSite: 'lax', path: '/', signed: false, overwrite: true });
      }
      return sign(signingKey, secret, purpose);
    },
    verify(ctx, purpose, submitted) {
      const origin = ctx.get('origin');
      if (origin !== '' && origin !== 'null' && origin !== options.origin) {
        throw new FormRefused('the form was posted from another site');
      }
      const secret = cookieSecret(ctx);
      if (secret === undefined || submitted === undefined || submitted === '') {
        throw new FormRefused('the form has expired or was not sent from this page; go back and try again');
      }
      const given = Buffer.from(submitted);
      // Older keys still verify tokens rendered before a rotation.
      const ok = options.keys.some((key) => {
        const expected = Buffer.from(sign(key, secret, purpose));
        return expected.length === given.length && timingSafeEqual(expected, given);
      });
      if (!ok) throw new FormRefused('the form has expired or was not sent from this page; go back and try again');
    },
  };
}

/** A form refused by its CSRF check: expired, from another tab or page, or posted from another site. */
export { FormRefused };

import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { CIBA_GRANT_TYPE } from '../kernel/grant-types.ts';
import type { ModelStore } from '../kernel/model-store.ts';

/*
 * Poll pacing (CIBA Core §7.3, §11): the backchannel authentication response tells the client the
 * `interval` to wait between token requests; a client polling faster gets `slow_down` and must wait
 * five seconds longer from then on (as RFC 8628 §3.5 says for the same error). oidc-provider has
 * the error but does not pace CIBA polls, so Moat does, before the token endpoint runs: the last
 * poll of each auth_req_id is kept in the short-lived store (shared by every instance) for the
 * request's greatest lifetime.
 */

/** The store's model name for poll records. */
const MODEL = 'CibaPoll';
/** RFC 8628 §3.5: each slow_down adds five seconds to the interval. */
const SLOW_DOWN_STEP_SECONDS = 5;

interface PollRecord {
  at: number;
  interval: number;
}

export interface PollPacingOptions {
  store: ModelStore;
  intervalSeconds: number;
  /** How long a poll record is kept: the longest a request can live. */
  keepSeconds: number;
  now: () => Date;
}

/** The token request's form, as storable-input.ts handed it on. */
function formOf(ctx: Parameters<Middleware>[0]): URLSearchParams | undefined {
  const body = (ctx.request as { body?: unknown }).body;
  if (typeof body === 'string') return new URLSearchParams(body);
  if (typeof body === 'object' && body !== null)
    return new URLSearchParams(Object.entries(body).filter((e): e is [string, string] => typeof e[1] === 'string'));
  return undefined;
}

/** oidc-provider middleware (provider.use): paces CIBA polls and announces the interval. */
export function cibaPollPacing(options: PollPacingOptions): Middleware {
  return async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path === '/token') {
      const form = formOf(ctx);
      const authReqId = form?.get('auth_req_id');
      if (form?.get('grant_type') === CIBA_GRANT_TYPE && typeof authReqId === 'string' && authReqId !== '') {
        const now = options.now().getTime();
        const last = (await options.store.find(MODEL, authReqId)) as PollRecord | undefined;
        const interval = last?.interval ?? options.intervalSeconds;
        if (last !== undefined && now - last.at < interval * 1000) {
          const slower = interval + SLOW_DOWN_STEP_SECONDS;
          await options.store.upsert(MODEL, authReqId, { at: now, interval: slower } as never, options.keepSeconds);
          ctx.status = 400;
          ctx.set('Cache-Control', 'no-store');
          ctx.body = { error: 'slow_down', error_description: `poll at most every ${slower} seconds for this request (CIBA Core §11)` };
          return;
        }
        await options.store.upsert(MODEL, authReqId, { at: now, interval } as never, options.keepSeconds);
      }
    }
    await next();
    const oidc = (ctx as unknown as KoaContextWithOIDC).oidc;
    if (oidc?.route === 'backchannel_authentication' && ctx.status === 200 && typeof ctx.body === 'object' && ctx.body !== null) {
      ctx.body = { ...ctx.body, interval: options.intervalSeconds };
    }
  };
}

import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { CIBA_GRANT_TYPE } from '../kernel/grant-types.ts';
import type { ModelStore } from '../kernel/model-store.ts';

/*
 * Poll pacing (CIBA Core §7.3, §11): the backchannel authentication response tells the client the
 * `interval` to wait between token requests; a client polling faster gets `slow_down` and must wait
 * five seconds longer from then on (as RFC 8628 §3.5 says for the same error). oidc-provider has
 * the error but does not pace CIBA polls, so Moat does, on the token endpoint's answer: only a poll
 * the endpoint answered `authorization_pending` counts — the client authenticated, the request is
 * its own and still waits — so a poll by anyone else (no client authentication, another client, a
 * made-up auth_req_id) never touches the real client's pace. Turning that answer into `slow_down`
 * changes nothing stored: oidc-provider refuses a pending request before it spends anything. The
 * last counted poll of each auth_req_id is kept in the short-lived store (shared by every instance)
 * for the request's greatest lifetime.
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

/** oidc-provider middleware (provider.use): paces CIBA polls and announces the interval. */
export function cibaPollPacing(options: PollPacingOptions): Middleware {
  return async (ctx, next) => {
    await next();
    const oidc = (ctx as unknown as KoaContextWithOIDC).oidc;
    if (oidc?.route === 'backchannel_authentication' && ctx.status === 200 && typeof ctx.body === 'object' && ctx.body !== null) {
      ctx.body = { ...ctx.body, interval: options.intervalSeconds };
      return;
    }
    const authReqId = oidc?.params?.auth_req_id;
    if (
      oidc?.route !== 'token' ||
      oidc.params?.grant_type !== CIBA_GRANT_TYPE ||
      oidc.client === undefined ||
      typeof authReqId !== 'string' ||
      ctx.status !== 400 ||
      (ctx.body as { error?: unknown } | undefined)?.error !== 'authorization_pending'
    ) {
      return;
    }
    const now = options.now().getTime();
    const last = (await options.store.find(MODEL, authReqId)) as PollRecord | undefined;
    const interval = last?.interval ?? options.intervalSeconds;
    if (last !== undefined && now - last.at < interval * 1000) {
      const slower = interval + SLOW_DOWN_STEP_SECONDS;
      await options.store.upsert(MODEL, authReqId, { at: now, interval: slower } as never, options.keepSeconds);
      ctx.body = { error: 'slow_down', error_description: `poll at most every ${slower} seconds for this request (CIBA Core §11)` };
      return;
    }
    await options.store.upsert(MODEL, authReqId, { at: now, interval } as never, options.keepSeconds);
  };
}

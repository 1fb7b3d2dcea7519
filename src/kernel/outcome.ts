import type { Middleware } from 'koa';

/**
 * What became of a request, in one word: Moat's own class when a route set one (`rate_limited`,
 * `storage_unavailable`, a consent outcome), else the OAuth error code of an error response, else
 * `ok` or `redirect`.
 */
export function outcomeOf(ctx: Parameters<Middleware>[0]): string {
  if (typeof ctx.state.outcome === 'string') return ctx.state.outcome;
  const body = ctx.body as { error?: unknown } | undefined;
  if (ctx.status >= 400 && typeof body?.error === 'string') return body.error;
  if (ctx.status >= 400) return `http_${ctx.status}`;
  return ctx.status >= 300 && ctx.status < 400 ? 'redirect' : 'ok';
}

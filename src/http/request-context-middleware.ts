import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from '../observability/logger.ts';
import { requestContext } from '../observability/request-context.ts';
import { oauthErrorResponse, serverErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';
import { outcomeOf } from '../kernel/outcome.ts';

export { outcomeOf };

/** FAPI 1.0 Baseline §6.2.1 / FAPI 2.0: the interaction id is an RFC 4122 UUID. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const INTERACTION_ID_HEADER = 'x-fapi-interaction-id';

/**
 * The outermost middleware: request id and `x-fapi-interaction-id` (echoed when the client sent a
 * UUID, generated otherwise), both on every log line through AsyncLocalStorage; one access-log
 * line per request; and the last line of defence that turns anything unexpected into a generic
 * error with the request id — never a stack trace.
 */
export function requestContextMiddleware(
  logger: Logger,
  /** Runs once the response is settled, before it is sent (the call record of src/diagnostics, which bounds its own wait). */
  afterRequest?: (ctx: Parameters<Middleware>[0], outcome: string) => Promise<void>,
): Middleware {
  return async (ctx, next) => {
    const sent = ctx.get(INTERACTION_ID_HEADER);
    const interactionId = UUID.test(sent) ? sent : randomUUID();
    const store = { requestId: randomUUID(), interactionId };
    ctx.state.requestContext = store;
    ctx.set(INTERACTION_ID_HEADER, interactionId);
    const started = process.hrtime.bigint();
    await requestContext.run(store, async () => {
      if (sent !== '' && sent !== interactionId) {
        logger.warn({ event: 'interaction_id.replaced' }, 'x-fapi-interaction-id is not a UUID; a new one was generated');
      }
      try {
        await next();
      } catch (err) {
        renderUnexpected(ctx, err, logger);
      } finally {
        // RFC 9110 §10.2.3: tell a client when an outage answer is worth retrying.
        if (ctx.status === 503 && !ctx.headerSent && ctx.response.headers['retry-after'] === undefined) ctx.set('Retry-After', '5');
        const outcome = outcomeOf(ctx);
        await afterRequest?.(ctx, outcome);
        logger.info(
          {
            event: 'request',
            method: ctx.method,
            path: ctx.path,
            status: ctx.status,
            durationMs: Number(process.hrtime.bigint() - started) / 1e6,
            ...clientOf(ctx),
            outcome,
          },
          'request',
        );
      }
    });
  };
}

function renderUnexpected(ctx: Parameters<Middleware>[0], err: unknown, logger: Logger): void {
  const { requestId } = ctx.state.requestContext as { requestId: string };
  const known = oauthErrorResponse(err, { requestId });
  if (known === undefined) logger.error({ err, event: 'server_error' }, 'unexpected error');
  else if (known.outcome === 'storage_unavailable') logger.error({ err, event: 'storage.unavailable' }, 'storage unavailable');
  else if (known.status >= 500) logger.error({ err, event: 'backend.unavailable' }, 'backend unavailable');
  const response = known ?? serverErrorResponse('an unexpected error occurred', requestId);
  writeErrorResponse(ctx, response);
  ctx.state.outcome = response.outcome ?? response.body.error;
}

/** The client oidc-provider authenticated or identified for this request, when there was one. */
function clientOf(ctx: Parameters<Middleware>[0]): { clientId?: string } {
  const clientId = (ctx as { oidc?: { client?: { clientId?: string } } }).oidc?.client?.clientId;
  return clientId === undefined ? {} : { clientId };
}

import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Middleware } from 'koa';
import { outcomeOf } from '../kernel/outcome.ts';
import { endpointOf } from './metrics.ts';

/*
 * OpenTelemetry tracing through the official API only: a server span per request (continuing the
 * caller's W3C `traceparent`), child spans for every Postgres query and every short-lived-store call.
 * Without an SDK registered the API is a no-op; an operator wires one in the standard way, e.g.
 * `node --import @opentelemetry/auto-instrumentations-node/register` with the OTEL_* variables.
 * Span names and attributes carry endpoint names and SQL verbs — never a token, a code or a query's
 * parameters.
 */

export const tracer = () => trace.getTracer('moat');

export function tracingMiddleware(): Middleware {
  return async (ctx, next) => {
    const parent = propagation.extract(context.active(), ctx.headers);
    const endpoint = endpointOf(ctx.path);
    await tracer().startActiveSpan(
      `${ctx.method} ${endpoint}`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': ctx.method, 'http.route': endpoint },
      },
      parent,
      async (span) => {
        try {
          await next();
        } finally {
          span.setAttribute('http.response.status_code', ctx.status);
          span.setAttribute('moat.outcome', outcomeOf(ctx));
          if (ctx.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
        }
      },
    );
  };
}

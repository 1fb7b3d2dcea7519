import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Tracing through the OpenTelemetry API, with an SDK registered the way an operator would: a server
 * span per request continuing the caller's W3C traceparent, and the storage calls as its children —
 * so a slow request can be followed to its query. No token or parameter in any span.
 */

const exporter = new InMemorySpanExporter();
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

afterAll(() => {
  trace.disable();
  context.disable();
  propagation.disable();
});

it("continues the caller's traceparent and nests the storage calls under the request span", async () => {
  exporter.reset();
  const traceId = '4bf92f3577b34da6a3ce929b0c6e8a11';
  const res = await tpp.fetch(`${h.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'accounts', client_id: tpp.client.client_id }).toString(),
  });
  expect(res.status).toBe(200);
  const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  const server = spans.find((s) => s.name === 'POST token');
  expect(server?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
  expect(server?.attributes).toEqual(expect.objectContaining({ 'http.route': 'token', 'http.response.status_code': 200, 'moat.outcome': 'ok' }));
  const storage = spans.filter((s) => s.parentSpanContext?.spanId === server?.spanContext().spanId && /^(postgres|pglite|redis) /.test(s.name));
  expect(storage.length).toBeGreaterThan(0);
});

it('puts no token, code or parameter into any span', async () => {
  exporter.reset();
  const { tokens, code } = await authorizationCodeFlow(h, tpp);
  const everything = JSON.stringify(exporter.getFinishedSpans().map((s) => ({ name: s.name, attributes: s.attributes })));
  for (const secret of [tokens.access_token, tokens.refresh_token, code, 'alice-sandbox']) expect(everything).not.toContain(secret);
  expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(expect.arrayContaining(['POST par', 'GET authorize', 'POST interaction', 'POST token']));
});

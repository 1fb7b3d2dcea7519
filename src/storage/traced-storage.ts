import { SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { tracer } from '../observability/tracing.ts';
import type { ModelStore } from '../kernel/model-store.ts';
import type { SqlClient } from './sql/sql-client.ts';

/*
 * Child spans for every Postgres query and every short-lived-store call (see observability/tracing.ts):
 * span names and attributes carry SQL verbs and model names, never a query's parameters.
 */

async function inSpan<T>(name: string, attributes: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span: Span) => {
    try {
      return await fn();
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).name });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** The SQL verb of a statement (SELECT, INSERT, …): enough to find the slow query, nothing of its data. */
function verbOf(text: string): string {
  return /^\s*(?:WITH\b[\s\S]*?\)\s*)?([A-Za-z]+)/.exec(text)?.[1]?.toUpperCase() ?? 'QUERY';
}

export function tracedSql(sql: SqlClient, system: 'postgres' | 'pglite'): SqlClient {
  const wrap = (client: SqlClient): SqlClient => ({
    query: (text, params) =>
      inSpan(`${system} ${verbOf(text)}`, { 'db.system': 'postgresql', 'db.operation.name': verbOf(text), 'moat.db': system }, () =>
        client.query(text, params),
      ),
    exec: (script) => inSpan(`${system} script`, { 'db.system': 'postgresql', 'moat.db': system }, () => client.exec(script)),
    transaction: (fn) => inSpan(`${system} transaction`, { 'db.system': 'postgresql', 'moat.db': system }, () => client.transaction((tx) => fn(wrap(tx)))),
    close: () => client.close(),
  });
  return wrap(sql);
}

export function tracedModelStore(store: ModelStore, system: 'redis' | 'memory'): ModelStore {
  const span = <T>(operation: string, model: string, fn: () => Promise<T>) =>
    inSpan(`${system} ${operation}`, { 'db.system': system, 'db.operation.name': operation, 'moat.model': model }, fn);
  return {
    upsert: (model, id, payload, expiresIn) => span('upsert', model, () => store.upsert(model, id, payload, expiresIn)),
    find: (model, id) => span('find', model, () => store.find(model, id)),
    findByUid: (model, uid) => span('findByUid', model, () => store.findByUid(model, uid)),
    findByUserCode: (model, code) => span('findByUserCode', model, () => store.findByUserCode(model, code)),
    consume: (model, id) => span('consume', model, () => store.consume(model, id)),
    recordOnce: (model, id, payload, expiresIn) => span('recordOnce', model, () => store.recordOnce(model, id, payload, expiresIn)),
    destroy: (model, id) => span('destroy', model, () => store.destroy(model, id)),
    revokeByGrantId: (model, grantId) => span('revokeByGrantId', model, () => store.revokeByGrantId(model, grantId)),
    purgeExpired: () => store.purgeExpired(),
    ping: () => store.ping(),
    close: () => store.close(),
  };
}

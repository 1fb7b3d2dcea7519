import type Router from '@koa/router';
import type Koa from 'koa';
import { z } from 'zod';
import { readJsonObject } from '../http/read-body.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import { hasBody } from './admin-request-guard.ts';
import type { Operator } from './operator-authentication.ts';

/*
 * One admin route: its method and path, what it reads (query and body schemas), what it answers
 * (the answer schema) and the handler between them. The same table mounts the routes
 * (mountAdminRoutes) and writes the OpenAPI document (admin-openapi.ts), so the document cannot
 * drift from what the listener does. A request that does not match its schema is answered
 * invalid_request naming the field; an answer is passed through its schema, so only the fields the
 * document names leave the listener.
 */

type Schema = z.ZodType;
type Parsed<S> = S extends Schema ? z.output<S> : undefined;

export interface AdminRequest<Q, B, D> {
  deps: D;
  params: Record<string, string>;
  query: Q;
  body: B;
  operator: Operator;
}

export interface AdminRouteSpec<D, QS extends Schema | undefined, BS extends Schema | undefined> {
  method: 'get' | 'post';
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  query?: QS;
  body?: BS;
  /** The 200 answer; a domain object is serialised (dates become RFC 3339) and then shaped by it. */
  answer: Schema;
  /** Set for an answer that is not JSON (Prometheus' text format). */
  contentType?: string;
  /** Failure statuses besides 400 (a request that does not match) and 401/403 (authentication). */
  failures?: readonly (404 | 409)[];
  handle(request: AdminRequest<Parsed<QS>, Parsed<BS>, D>): Promise<unknown> | unknown;
}

/** A route with its types erased, for the table. */
export interface AdminRoute<D> {
  readonly spec: AdminRouteSpec<D, Schema | undefined, Schema | undefined>;
}

/** The route constructor for one table's dependencies: each route's query and body types are inferred from its schemas. */
export function adminRouteFor<D>() {
  return <QS extends Schema | undefined = undefined, BS extends Schema | undefined = undefined>(spec: AdminRouteSpec<D, QS, BS>): AdminRoute<D> => ({
    spec: spec as unknown as AdminRouteSpec<D, Schema | undefined, Schema | undefined>,
  });
}

/** The first problem of a request that did not match, naming the field ("status: status must be one of …"). */
function describeIssue(error: z.ZodError, where: 'query' | 'body'): string {
  const issue = error.issues[0]!;
  const field = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') return `${where} has unknown field(s): ${issue.keys.join(', ')}`;
  return field === '' || issue.message.includes(field) ? issue.message : `${field}: ${issue.message}`;
}

function parseInput<S extends Schema>(schema: S, value: unknown, where: 'query' | 'body'): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new OAuthError('invalid_request', describeIssue(result.error, where));
  return result.data;
}

/** Query values as one string each: a repeated parameter is ambiguous, so it is refused. */
function singleValued(query: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(query)) {
    if (Array.isArray(value)) throw new OAuthError('invalid_request', `${name} is given more than once`);
    if (value !== undefined && value !== '') out[name] = value;
  }
  return out;
}

/** A handler's answer as JSON carries it: Dates as strings, undefined fields gone. */
function serialised(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}

export class AnswerOutOfContract extends Error {
  constructor(route: string, error: z.ZodError) {
    super(
      `${route} answered outside its schema: ${error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.')} ${i.message}`)
        .join('; ')}`,
    );
    this.name = 'AnswerOutOfContract';
  }
}

export function mountAdminRoutes<D, S extends { operator: Operator }>(router: Router<S>, routes: readonly AdminRoute<D>[], deps: D): void {
  for (const { spec } of routes) {
    router[spec.method](spec.path, async (ctx: Koa.ParameterizedContext<S> & { params: Record<string, string> }) => {
      const query = spec.query === undefined ? undefined : parseInput(spec.query, singleValued(ctx.query), 'query');
      const body = spec.body === undefined ? undefined : parseInput(spec.body, hasBody(ctx) ? await readJsonObject(ctx.req) : {}, 'body');
      const result = await spec.handle({ deps, params: ctx.params, query, body, operator: ctx.state.operator });
      if (spec.contentType !== undefined) {
        ctx.type = spec.contentType;
        ctx.body = result;
        return;
      }
      const shaped = spec.answer.safeParse(serialised(result));
      if (!shaped.success) throw new AnswerOutOfContract(`${spec.method.toUpperCase()} ${spec.path}`, shaped.error);
      ctx.body = shaped.data;
    });
  }
}

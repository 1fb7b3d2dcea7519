import { z } from 'zod';
import { errorAnswer } from './admin-api-schemas.ts';
import type { AdminRoute } from './admin-route.ts';
import { ADMIN_ROUTES, type AdminServices } from './admin-routes.ts';

/*
 * The admin API as an OpenAPI 3.1 document, written from the route table (admin-routes.ts): the
 * same schemas validate requests and shape answers, so the document is what the listener does.
 * Served at GET /openapi.json on the admin listener and committed as docs/admin-api.openapi.json
 * (`npm run openapi:admin`; a test fails when the two differ).
 */

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'throw' }) as JsonSchema;
  return rest;
}

/** Koa's `/certificates/:thumbprint` as OpenAPI's `/certificates/{thumbprint}`, with its parameters. */
function pathOf(path: string): { path: string; parameters: JsonSchema[] } {
  const names = [...path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
  return {
    path: path.replace(/:(\w+)/g, '{$1}'),
    parameters: names.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string', minLength: 1 } })),
  };
}

function queryParameters(schema: z.ZodType | undefined): JsonSchema[] {
  if (schema === undefined) return [];
  const { properties = {}, required = [] } = jsonSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(properties).map(([name, property]) => ({ name, in: 'query', required: required.includes(name), schema: property }));
}

const failure = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });

const FAILURES: Record<number, string> = {
  404: 'Not found: the named certificate, consent, customer or restriction does not exist, or the feature is off',
  409: 'The change conflicts with the current state (a consent already final)',
};

function operation(route: AdminRoute<AdminServices>): JsonSchema {
  const { spec } = route;
  const { parameters } = pathOf(spec.path);
  const success =
    spec.contentType === undefined
      ? { 'application/json': { schema: jsonSchema(spec.answer, 'output') } }
      : { [spec.contentType.split(';')[0]!]: { schema: { type: 'string' } } };
  return {
    operationId: spec.operationId,
    summary: spec.summary,
    tags: [spec.tag],
    parameters: [...parameters, ...queryParameters(spec.query)],
    ...(spec.body === undefined ? {} : { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(spec.body, 'input') } } } }),
    responses: {
      200: { description: 'OK', content: success },
      400: failure('The request does not match: `error_description` names the field'),
      401: failure('No valid admin token or operator certificate'),
      403: failure('Refused by the checks against browsers (Host, Origin, content type)'),
      ...Object.fromEntries((spec.failures ?? []).map((status) => [status, failure(FAILURES[status]!)])),
    },
  };
}

export function adminOpenApi(routes: readonly AdminRoute<AdminServices>[] = ADMIN_ROUTES): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const { path } = pathOf(route.spec.path);
    paths[path] ??= {};
    paths[path][route.spec.method] = operation(route);
  }
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Moat admin API',
      version: '1',
      description: [
        "Operations' side of Moat, on its own listener (admin.host/admin.port; loopback by default). Every request carries the admin token (`Authorization: Bearer`, admin.tokenFile) or an operator certificate (admin.tls).",
        'Every change is recorded in the audit log under the operator\'s identity with the reason given. Errors are `{ "error", "error_description" }`.',
        'Generated from src/admin/admin-routes.ts by `npm run openapi:admin`; a test fails when the two differ.',
      ].join('\n\n'),
    },
    security: [{ adminToken: [] }, { operatorCertificate: [] }],
    paths,
    components: {
      schemas: { Error: jsonSchema(errorAnswer, 'output') },
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'The token in admin.tokenFile' },
        operatorCertificate: { type: 'mutualTLS', description: 'A certificate issued by one of admin.tls.clientCaFiles' },
      },
    },
  };
}

export function adminOpenApiText(): string {
  return `${JSON.stringify(adminOpenApi(), null, 2)}\n`;
}

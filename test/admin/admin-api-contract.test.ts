import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { consent, reasonBody, stepUpBody, certificatesQuery, auditQuery } from '../../src/admin/admin-api-schemas.ts';
import { adminOpenApi, adminOpenApiText } from '../../src/admin/admin-openapi.ts';
import { ADMIN_ROUTES } from '../../src/admin/admin-routes.ts';

/*
 * The admin API's contract (issue 15 point 4): zod schemas for every request and answer, and the
 * OpenAPI document generated from the same route table that mounts the routes.
 */

const committed = join(import.meta.dirname, '..', '..', 'docs', 'admin-api.openapi.json');

it('is the document the route table generates (npm run openapi:admin)', () => {
  expect(readFileSync(committed, 'utf8')).toBe(adminOpenApiText());
});

it('documents every route with an answer schema, and every route that changes something with a request body', () => {
  const doc = adminOpenApi() as { paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>> };
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`));
  expect(documented.sort()).toEqual(ADMIN_ROUTES.map(({ spec }) => `${spec.method.toUpperCase()} ${spec.path.replace(/:(\w+)/g, '{$1}')}`).sort());
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      expect([path, Object.keys(op.responses)]).toEqual([path, expect.arrayContaining(['200', '400', '401'])]);
      if (method === 'post') expect([path, op.requestBody]).toEqual([path, expect.objectContaining({ required: true })]);
    }
  }
});

it('names the field of a request that does not match', () => {
  const issue = (schema: z.ZodType, value: unknown) => (schema.safeParse(value).error?.issues ?? []).map((i) => i.message);
  expect(issue(reasonBody, {})).toEqual(['send {"reason": "..."}: it is recorded in the audit log']);
  expect(issue(reasonBody, { reason: '   ' })).toEqual(['send {"reason": "..."}: it is recorded in the audit log']);
  expect(issue(stepUpBody, { reason: 'r', seconds: 1.5 })).toEqual(['seconds must be a whole number of seconds up to 30 days']);
  expect(issue(certificatesQuery, { status: 'lost' })).toEqual(['status must be one of active, retired, revoked']);
  expect(issue(certificatesQuery, { expiringWithin: '60', org: 'o' })).toEqual(['expiringWithin cannot be combined with other filters']);
  expect(issue(auditQuery, { since: 'yesterday' })).toEqual(['since must be an ISO 8601 date-time']);
});

it('shapes an answer to its schema: a field the document does not name never leaves the listener', () => {
  const at = new Date('2026-12-05T10:00:00Z');
  const stored = {
    id: 'aac-1',
    kind: 'account_access',
    origin: 'intent',
    clientId: 'c',
    status: 'Authorised',
    scope: 'accounts',
    createdAt: at,
    statusUpdatedAt: at,
    internalNote: 'not for the operator API',
  };
  const shaped = consent.parse(JSON.parse(JSON.stringify(stored)));
  expect(shaped).toEqual({
    id: 'aac-1',
    kind: 'account_access',
    origin: 'intent',
    clientId: 'c',
    status: 'Authorised',
    scope: 'accounts',
    createdAt: at.toISOString(),
    statusUpdatedAt: at.toISOString(),
  });
  expect(consent.safeParse({ ...stored, status: 'Pending' }).success).toBe(false);
});

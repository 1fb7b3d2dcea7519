import { z } from 'zod';
import {
  ACCOUNT_SERVICE_CONTRACT_VERSION,
  ACCOUNT_SERVICE_PATHS,
  accountListSchema,
  canPayQuerySchema,
  canPaySchema,
  contractAccountSchema,
} from './account-service-contract.ts';

/*
 * The account service contract as an OpenAPI 3.1 document, built from the zod schemas Moat checks
 * answers with. OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what z.toJSONSchema writes.
 */

type JsonSchema = Record<string, unknown>;

/**
 * A schema without its own `$schema` (the document names the dialect) or `$id` (zod writes the
 * component's reference there; a 2020-12 `$id` may not be a fragment).
 */
function withoutDialect(schema: JsonSchema): JsonSchema {
  const { $schema: _dialect, $id: _id, ...rest } = schema;
  return rest;
}

/** The named schemas, referring to each other under components/schemas. */
function componentSchemas(): Record<string, JsonSchema> {
  const named = z.registry<{ id: string }>();
  named.add(contractAccountSchema, { id: 'Account' });
  named.add(accountListSchema, { id: 'AccountList' });
  named.add(canPaySchema, { id: 'CanPay' });
  const { schemas } = z.toJSONSchema(named, { io: 'input', unrepresentable: 'throw', uri: (id) => `#/components/schemas/${id}` });
  return Object.fromEntries(Object.entries(schemas).map(([id, schema]) => [id, withoutDialect(schema as JsonSchema)]));
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const json = (schema: JsonSchema, description: string) => ({ description, content: { 'application/json': { schema } } });

const pathParameter = (name: string, description: string) => ({ name, in: 'path', required: true, description, schema: { type: 'string', minLength: 1 } });

/** What every operation may answer besides its success: Moat retries these and counts them as failures. */
const failureAnswers = {
  500: { description: 'The service failed. Moat retries (bounded, with backoff) and shows the customer that their accounts cannot be shown right now.' },
  503: { description: 'The service is unavailable. As 500.' },
};

export function accountServiceOpenApi(): Record<string, unknown> {
  const query = withoutDialect(z.toJSONSchema(canPayQuerySchema, { io: 'input', unrepresentable: 'throw' }) as JsonSchema) as {
    properties: Record<string, JsonSchema>;
    required: string[];
  };
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Moat account service contract',
      version: ACCOUNT_SERVICE_CONTRACT_VERSION,
      description: [
        "What a bank implements so that Moat (accounts.source: http) can offer a customer's accounts on the consent page and check that the account chosen for a payment can pay it.",
        'Moat calls over mutual TLS with its client certificate (accounts.http.clientCertFile); the service should accept only that certificate. Both operations are safe, idempotent GETs: Moat retries them after a timeout, a connection failure or a 5xx, within accounts.http.retries.',
        'An answer that does not match its schema is refused as a whole, and Moat logs each offending field (never its value). Fields not named here are ignored.',
        'Generated from src/accounts/account-service-contract.ts by `npm run openapi:accounts`; a test fails when the two differ.',
      ].join('\n\n'),
    },
    servers: [{ url: 'https://accounts.bank.example/moat', description: 'accounts.http.url: every path below is appended to it' }],
    security: [{ moatClientCertificate: [] }],
    paths: {
      [ACCOUNT_SERVICE_PATHS.accounts]: {
        get: {
          operationId: 'listCustomerAccounts',
          summary: "A customer's accounts",
          description:
            'The accounts Moat may offer the customer on a consent page. `customerId` is the id the customer signed in as (customers.source decides it). An unknown customer is answered with an empty list, not 404.',
          parameters: [pathParameter('customerId', "The customer's id as Moat knows it")],
          responses: { 200: json(ref('AccountList'), "The customer's accounts"), ...failureAnswers },
        },
      },
      [ACCOUNT_SERVICE_PATHS.canPay]: {
        get: {
          operationId: 'canAccountPay',
          summary: 'Whether an account can pay an amount',
          description: 'Asked for each account offered for a payment before the customer chooses: only accounts that can pay are offered.',
          parameters: [
            pathParameter('customerId', "The customer's id as Moat knows it"),
            pathParameter('accountId', "An `id` from the customer's account list"),
            ...Object.entries(query.properties).map(([name, schema]) => ({ name, in: 'query', required: query.required.includes(name), schema })),
          ],
          responses: {
            200: json(ref('CanPay'), 'The answer'),
            404: { description: "The account is not the customer's: Moat does not offer it." },
            ...failureAnswers,
          },
        },
      },
    },
    components: {
      schemas: componentSchemas(),
      securitySchemes: { moatClientCertificate: { type: 'mutualTLS', description: "Moat's client certificate (accounts.http.clientCertFile)" } },
    },
  };
}

/** The document as committed: two-space JSON with a final newline. */
export function accountServiceOpenApiText(): string {
  return `${JSON.stringify(accountServiceOpenApi(), null, 2)}\n`;
}

import { z } from 'zod';
import {
  BANK_APP_CALLBACK_PREFIX,
  BANK_APP_CONTRACT_VERSION,
  bankAppDecisionResultSchema,
  bankAppDecisionSchema,
  bankAppErrorSchema,
  bankAppNotificationSchema,
} from './bank-app-contract.ts';

/*
 * The bank notification interface as an OpenAPI 3.1 document: the notification Moat sends (a
 * webhook, OpenAPI 3.1 §4.8.1) and the callback the bank's app calls. Built from the zod schemas
 * Moat sends and checks with, so the document cannot drift from the code.
 */

type JsonSchema = Record<string, unknown>;

function schemas(): Record<string, JsonSchema> {
  const named = z.registry<{ id: string }>();
  named.add(bankAppNotificationSchema, { id: 'BankAppNotification' });
  named.add(bankAppDecisionSchema, { id: 'BankAppDecision' });
  named.add(bankAppDecisionResultSchema, { id: 'BankAppDecisionResult' });
  named.add(bankAppErrorSchema, { id: 'BankAppError' });
  const { schemas: written } = z.toJSONSchema(named, { io: 'input', unrepresentable: 'throw', uri: (id) => `#/components/schemas/${id}` });
  // The document names the dialect; a 2020-12 `$id` may not be a fragment.
  return Object.fromEntries(Object.entries(written).map(([id, { $schema: _d, $id: _i, ...rest }]) => [id, rest as JsonSchema]));
}

const body = (name: string, description: string) => ({ description, content: { 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } } });

export function bankAppOpenApi(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Moat bank notification interface (decoupled authorisation, CIBA)',
      version: BANK_APP_CONTRACT_VERSION,
      description: [
        "How a bank's own app completes decoupled authorisation requests (OpenID Connect CIBA under FAPI-CIBA) that TPPs send to Moat.",
        "1. A TPP asks Moat to authenticate a customer. Moat POSTs a BankAppNotification to ciba.bankApp.notificationEndpoint over mutual TLS (Moat's certificate: ciba.bankApp.clientCertFile). Answer 2xx; a failure is logged and the request stays open until it expires.",
        "2. The bank's app shows the customer the TPP's name, what it asks and the binding message, authenticates the customer strongly (two categories, RTS on SCA Art. 4) and lets them choose accounts.",
        "3. The app POSTs a BankAppDecision to the notification's `callback`, presenting the client certificate whose subject is ciba.bankApp.callbackSubjectDn (chaining to Moat's trustAnchors). Moat records the consent and hands the TPP its tokens or access_denied.",
        'Generated from src/ciba/bank-app-contract.ts by `npm run openapi:bank-app`; a test fails when the two differ.',
      ].join('\n\n'),
    },
    servers: [{ url: 'https://moat.bank.example', description: "Moat's issuer" }],
    paths: {
      [`${BANK_APP_CALLBACK_PREFIX}/{requestId}/decision`]: {
        post: {
          operationId: 'decideRequest',
          summary: "The customer's decision on a request",
          security: [{ bankAppClientCertificate: [] }],
          parameters: [
            { name: 'requestId', in: 'path', required: true, schema: { type: 'string', minLength: 1 }, description: "The notification's request_id" },
          ],
          requestBody: { required: true, ...body('BankAppDecision', 'The decision, and for an approval how the customer authenticated') },
          responses: {
            200: body('BankAppDecisionResult', 'Recorded; for an approval, the consent created'),
            400: body('BankAppError', 'invalid_request or choice_invalid: the body, or the accounts chosen'),
            401: body('BankAppError', 'unauthorized_client (no or another certificate) or sca_required (the methods do not make SCA)'),
            404: body('BankAppError', 'not_found: no such request for this customer'),
            409: body('BankAppError', 'already_decided'),
            410: body('BankAppError', 'expired'),
          },
        },
      },
    },
    webhooks: {
      decoupledAuthorisationRequested: {
        post: {
          operationId: 'notifyBankApp',
          summary: "A TPP asks the customer to approve a request in the bank's app",
          security: [{ moatClientCertificate: [] }],
          requestBody: { required: true, ...body('BankAppNotification', 'What the app shows the customer') },
          responses: { 204: { description: 'Accepted (any 2xx is)' } },
        },
      },
    },
    components: {
      schemas: schemas(),
      securitySchemes: {
        bankAppClientCertificate: { type: 'mutualTLS', description: "The bank app's client certificate (ciba.bankApp.callbackSubjectDn)" },
        moatClientCertificate: { type: 'mutualTLS', description: "Moat's client certificate (ciba.bankApp.clientCertFile)" },
      },
    },
  };
}

/** The document as committed: two-space JSON with a final newline. */
export function bankAppOpenApiText(): string {
  return `${JSON.stringify(bankAppOpenApi(), null, 2)}\n`;
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { accountListSchema, canPaySchema } from '../../src/accounts/account-service-contract.ts';
import { accountServiceOpenApi, accountServiceOpenApiText } from '../../src/accounts/account-service-openapi.ts';

/*
 * The account service contract a bank implements (issue 17 point 2): the OpenAPI document in the
 * repository is the one the schemas Moat validates with generate.
 */

const committed = join(import.meta.dirname, '..', '..', 'docs', 'account-service.openapi.json');

describe('the account service contract (docs/account-service.openapi.json)', () => {
  it('is the document the schemas Moat validates answers with generate (npm run openapi:accounts)', () => {
    expect(readFileSync(committed, 'utf8')).toBe(accountServiceOpenApiText());
  });

  it("lists a customer's accounts with id, nickname, type, currency, scheme and identification", () => {
    const doc = accountServiceOpenApi() as { paths: Record<string, { get: { responses: Record<string, unknown> } }>; components: { schemas: Record<string, { required: string[] }> } };
    expect(Object.keys(doc.paths)).toEqual(['/customers/{customerId}/accounts', '/customers/{customerId}/accounts/{accountId}/can-pay']);
    expect(doc.components.schemas.Account!.required).toEqual(['id', 'nickname', 'type', 'currency', 'schemeName', 'identification']);
    expect(doc.components.schemas.CanPay!.required).toEqual(['canPay']);
  });

  it('takes answers with fields it does not name, and drops those fields', () => {
    const parsed = accountListSchema.parse({ accounts: [{ id: 'a', nickname: 'n', type: 't', currency: 'GBP', schemeName: 'UK.OBIE.IBAN', identification: 'GB29NWBK60161331926819', balance: '12.00' }], next: 'x' });
    expect(parsed).toEqual({ accounts: [{ id: 'a', nickname: 'n', type: 't', currency: 'GBP', schemeName: 'UK.OBIE.IBAN', identification: 'GB29NWBK60161331926819' }] });
    expect(canPaySchema.safeParse({ canPay: 'true' }).success).toBe(false);
  });
});

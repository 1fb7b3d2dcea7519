import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { accountListSchema, canPaySchema, contractViolations } from '../../src/accounts/account-service-contract.ts';
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
    const doc = accountServiceOpenApi() as {
      paths: Record<string, unknown>;
      components: { schemas: { Account: { oneOf: { required: string[]; properties: { schemeName: { const: string } } }[] }; CanPay: { required: string[] } } };
    };
    expect(Object.keys(doc.paths)).toEqual(['/customers/{customerId}/accounts', '/customers/{customerId}/accounts/{accountId}/can-pay']);
    // One form per scheme, each with every field.
    expect(doc.components.schemas.Account.oneOf.map((form) => form.properties.schemeName.const)).toEqual(['UK.OBIE.SortCodeAccountNumber', 'UK.OBIE.IBAN']);
    for (const form of doc.components.schemas.Account.oneOf)
      expect(form.required).toEqual(['id', 'nickname', 'type', 'currency', 'schemeName', 'identification']);
    expect(doc.components.schemas.CanPay.required).toEqual(['canPay']);
  });

  it("refuses an account whose identification is not of its scheme's form, naming the field", () => {
    const account = { id: 'a', nickname: 'n', type: 't', currency: 'GBP' };
    const result = accountListSchema.safeParse({
      accounts: [
        { ...account, schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '2000 1711 1122 22' },
        { ...account, schemeName: 'UK.OBIE.IBAN', identification: 'gb29 nwbk' },
        { ...account, schemeName: 'UK.OBIE.PAN', identification: '4111111111111111' },
      ],
    });
    expect(contractViolations(result.error!)).toEqual([
      'accounts[0].identification: a sort code and account number is 14 digits',
      'accounts[1].identification: an IBAN is two letters, two check digits and up to 30 letters or digits, without spaces',
      'accounts[2].schemeName: expected one of UK.OBIE.SortCodeAccountNumber, UK.OBIE.IBAN',
    ]);
  });

  it('takes answers with fields it does not name, and drops those fields', () => {
    const parsed = accountListSchema.parse({
      accounts: [
        { id: 'a', nickname: 'n', type: 't', currency: 'GBP', schemeName: 'UK.OBIE.IBAN', identification: 'GB29NWBK60161331926819', balance: '12.00' },
      ],
      next: 'x',
    });
    expect(parsed).toEqual({
      accounts: [{ id: 'a', nickname: 'n', type: 't', currency: 'GBP', schemeName: 'UK.OBIE.IBAN', identification: 'GB29NWBK60161331926819' }],
    });
    expect(canPaySchema.safeParse({ canPay: 'true' }).success).toBe(false);
  });
});

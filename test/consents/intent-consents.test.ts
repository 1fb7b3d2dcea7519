import { decodeJwt } from 'jose';
import type { Harness } from '../support/moat-harness.ts';
import { authorize, onboardTpp, pushAuthorization, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import {
  accountAccessBody,
  clientCredentialsToken,
  parError,
  consentApi,
  domesticPaymentBody,
  intentClaims,
  introspect,
  redeem,
  refresh,
} from '../support/consents.ts';

/*
 * Intent lodging, UK Open Banking style: the TPP creates a consent with a client-credentials token,
 * the customer authorises it in the browser flow by its openbanking_intent_id, and the tokens carry
 * it. Every call runs over real mTLS against a real Moat.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

describe('the account-access-consents API', () => {
  let token: string;
  beforeAll(async () => {
    token = await clientCredentialsToken(tpp, 'accounts');
  });

  it('lodges a consent as AwaitingAuthorisation and reads it back', async () => {
    const created = await consentApi(tpp, 'POST', '/aisp/account-access-consents', {
      token,
      body: accountAccessBody({ ExpirationDateTime: '2030-01-01T00:00:00Z' }),
    });
    expect(created.status).toBe(201);
    expect(created.body.Data).toEqual(
      expect.objectContaining({
        ConsentId: expect.stringMatching(/^aac-/),
        Status: 'AwaitingAuthorisation',
        ExpirationDateTime: '2030-01-01T00:00:00Z',
        Permissions: ['ReadAccountsDetail', 'ReadBalances', 'ReadTransactionsDetail', 'ReadTransactionsCredits', 'ReadTransactionsDebits'],
      }),
    );
    expect(created.body.Links.Self).toBe(`${h.issuer}/open-banking/v3.1/aisp/account-access-consents/${created.body.Data.ConsentId}`);
    const read = await consentApi(tpp, 'GET', `/aisp/account-access-consents/${created.body.Data.ConsentId}`, { token });
    expect(read.status).toBe(200);
    expect(read.body.Data.Status).toBe('AwaitingAuthorisation');
  });

  it('hides a consent from every TPP but the one that created it', async () => {
    const created = await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token, body: accountAccessBody() });
    const other = await onboardTpp(h);
    try {
      const otherToken = await clientCredentialsToken(other, 'accounts');
      const read = await consentApi(other, 'GET', `/aisp/account-access-consents/${created.body.Data.ConsentId}`, { token: otherToken });
      expect(read.status).toBe(404);
      expect(read.body.Errors[0].ErrorCode).toBe('UK.OBIE.Resource.NotFound');
      const deleted = await consentApi(other, 'DELETE', `/aisp/account-access-consents/${created.body.Data.ConsentId}`, { token: otherToken });
      expect(deleted.status).toBe(404);
    } finally {
      await other.close();
    }
  });

  it.each([
    ['an unknown permission', accountAccessBody({ Permissions: ['ReadEverything'] }), 'UK.OBIE.Field.Invalid', /Permissions/],
    [
      'transaction detail without a direction (UK OB rule)',
      accountAccessBody({ Permissions: ['ReadTransactionsDetail'] }),
      'UK.OBIE.Field.Invalid',
      /ReadTransactionsCredits\/Debits/,
    ],
    [
      'an expiry in the past',
      accountAccessBody({ ExpirationDateTime: '2020-01-01T00:00:00Z' }),
      'UK.OBIE.Field.Invalid',
      /expirationDateTime: the expiry is in the past/,
    ],
    ['a date that is not ISO 8601', accountAccessBody({ ExpirationDateTime: 'next tuesday' }), 'UK.OBIE.Field.Invalid', /ISO 8601/],
    ['an unexpected field', { ...accountAccessBody(), Extra: 1 }, 'UK.OBIE.Field.Unexpected', /Extra/],
    ['no Risk', { Data: { Permissions: ['ReadBalances'] } }, 'UK.OBIE.Field.Missing', /Risk/],
  ])('refuses %s with 400 and the OBIE error structure', async (_name, body, code, message) => {
    const res = await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token, body });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(expect.objectContaining({ Code: '400 BadRequest', Id: expect.any(String), Message: expect.stringMatching(message) }));
    expect(res.body.Errors[0].ErrorCode).toBe(code);
  });

  it('refuses a body that is not JSON with 400, never a 500', async () => {
    const res = await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token, body: '{"Data": ', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
  });

  it('refuses a call without a token, with a payments token, or with a token of the authorization-code flow', async () => {
    expect((await consentApi(tpp, 'POST', '/aisp/account-access-consents', { body: accountAccessBody() })).status).toBe(401);
    const payments = await clientCredentialsToken(tpp, 'payments');
    const wrongScope = await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token: payments, body: accountAccessBody() });
    expect(wrongScope.status).toBe(403);
    expect(wrongScope.body.error).toBe('insufficient_scope');
    const { tokens } = await import('../support/tpp-client.ts').then((m) => m.authorizationCodeFlow(h, tpp));
    const userToken = await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token: tokens.access_token, body: accountAccessBody() });
    expect(userToken.status).toBe(401);
    expect(userToken.headers.get('www-authenticate')).toContain('invalid_token');
  });

  it('refuses the token over another TPP certificate (RFC 8705 §3)', async () => {
    const other = await onboardTpp(h);
    try {
      const res = await consentApi(other, 'POST', '/aisp/account-access-consents', { token, body: accountAccessBody() });
      expect(res.status).toBe(401);
      expect(res.body.error_description).toContain('bound to a different client certificate');
    } finally {
      await other.close();
    }
  });
});

describe('an authorised intent', () => {
  let consentId: string;
  let tokens: Record<string, any>;
  let ccToken: string;

  beforeAll(async () => {
    ccToken = await clientCredentialsToken(tpp, 'accounts');
    consentId = (await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token: ccToken, body: accountAccessBody() })).body.Data.ConsentId;
    const code = await authorize(h, tpp, { scope: 'openid accounts', extraParams: { claims: intentClaims(consentId) }, accounts: ['acc-alice-savings'] });
    const redeemed = await redeem(tpp, code);
    expect(redeemed.status).toBe(200);
    tokens = redeemed.body;
  });

  it('carries the intent id and the consent in the token response', () => {
    expect(tokens.openbanking_intent_id).toBe(consentId);
    expect(tokens.consent_id).toBe(consentId);
    expect(tokens.authorization_details).toEqual([
      expect.objectContaining({
        type: 'account_information',
        consentId,
        permissions: ['ReadAccountsDetail', 'ReadBalances', 'ReadTransactionsDetail', 'ReadTransactionsCredits', 'ReadTransactionsDebits'],
        accounts: [{ accountId: 'acc-alice-savings', schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '40001787654321' }],
      }),
    ]);
  });

  it('names the intent in the ID token', () => {
    expect(decodeJwt(tokens.id_token as string).openbanking_intent_id).toBe(consentId);
  });

  it('shows the consent, the permissions and only the selected account at introspection', async () => {
    const result = await introspect(tpp, tokens.access_token as string);
    expect(result).toEqual(expect.objectContaining({ active: true, consent_id: consentId, openbanking_intent_id: consentId }));
    expect(result.authorization_details[0].accounts.map((a: { accountId: string }) => a.accountId)).toEqual(['acc-alice-savings']);
  });

  it('reads as Authorised through the consent API, and cannot be authorised a second time', async () => {
    const read = await consentApi(tpp, 'GET', `/aisp/account-access-consents/${consentId}`, { token: ccToken });
    expect(read.body.Data.Status).toBe('Authorised');
    const res = await tpp.fetch(`${h.issuer}/par`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: tpp.client.client_id,
        response_type: 'code',
        redirect_uri: tpp.redirectUri,
        scope: 'openid accounts',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
        claims: intentClaims(consentId),
      }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: 'invalid_request',
      error_description: `consent ${consentId} is Authorised, not AwaitingAuthorisation; lodge a new consent`,
    });
  });

  it('dies with its tokens when the TPP deletes it: introspection inactive, refresh refused', async () => {
    const deleted = await consentApi(tpp, 'DELETE', `/aisp/account-access-consents/${consentId}`, { token: ccToken });
    expect(deleted.status).toBe(204);
    expect((await introspect(tpp, tokens.access_token as string)).active).toBe(false);
    const refreshed = await refresh(tpp, tokens.refresh_token as string);
    expect(refreshed.status).toBe(400);
    expect(refreshed.body.error).toBe('invalid_grant');
    const read = await consentApi(tpp, 'GET', `/aisp/account-access-consents/${consentId}`, { token: ccToken });
    expect(read.body.Data.Status).toBe('Revoked');
    const events = await h.moat.consents.events(consentId);
    expect(events.map((e) => [e.fromStatus, e.toStatus, e.actor])).toEqual([
      [undefined, 'AwaitingAuthorisation', 'tpp'],
      ['AwaitingAuthorisation', 'Authorised', 'customer'],
      ['Authorised', 'Revoked', 'tpp'],
    ]);
  });
});

describe('intents the PAR refuses', () => {
  it("refuses an unknown intent id and another TPP's intent with invalid_request", async () => {
    expect(await parError(tpp, { claims: intentClaims('aac-does-not-exist') })).toEqual({
      error: 'invalid_request',
      error_description: 'openbanking_intent_id aac-does-not-exist is not a consent this client lodged',
    });
    const other = await onboardTpp(h);
    try {
      const theirs = (
        await consentApi(other, 'POST', '/aisp/account-access-consents', { token: await clientCredentialsToken(other, 'accounts'), body: accountAccessBody() })
      ).body.Data.ConsentId as string;
      expect((await parError(tpp, { claims: intentClaims(theirs) })).error_description).toMatch(/is not a consent this client lodged/);
    } finally {
      await other.close();
    }
  });

  it('refuses an intent and authorization_details together', async () => {
    const consentId = (
      await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token: await clientCredentialsToken(tpp, 'accounts'), body: accountAccessBody() })
    ).body.Data.ConsentId as string;
    expect(
      await parError(tpp, {
        claims: intentClaims(consentId),
        authorization_details: JSON.stringify([{ type: 'account_information', permissions: ['ReadBalances'] }]),
      }),
    ).toEqual({ error: 'invalid_authorization_details', error_description: 'use either authorization_details or the openbanking_intent_id claim, not both' });
  });

  it('lets the TPP withdraw an intent nobody authorised (it becomes Rejected) and then refuses it', async () => {
    const token = await clientCredentialsToken(tpp, 'accounts');
    const consentId = (await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token, body: accountAccessBody() })).body.Data.ConsentId as string;
    expect((await consentApi(tpp, 'DELETE', `/aisp/account-access-consents/${consentId}`, { token })).status).toBe(204);
    expect((await consentApi(tpp, 'GET', `/aisp/account-access-consents/${consentId}`, { token })).body.Data.Status).toBe('Rejected');
    expect((await parError(tpp, { claims: intentClaims(consentId) })).error_description).toMatch(/is Rejected, not AwaitingAuthorisation/);
  });

  it('sends the customer back with access_denied and records Rejected when they deny', async () => {
    const token = await clientCredentialsToken(tpp, 'accounts');
    const consentId = (await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token, body: accountAccessBody() })).body.Data.ConsentId as string;
    const { requestUri } = await pushAuthorization(tpp, { extraParams: { claims: intentClaims(consentId) } });
    const { customerConsents } = await import('../support/tpp-client.ts');
    const location = new URL(await customerConsents(h, tpp, requestUri, { decision: 'deny' }));
    expect(location.searchParams.get('error')).toBe('access_denied');
    expect((await consentApi(tpp, 'GET', `/aisp/account-access-consents/${consentId}`, { token })).body.Data.Status).toBe('Rejected');
  });
});

describe('the domestic-payment-consents API', () => {
  let token: string;
  beforeAll(async () => {
    token = await clientCredentialsToken(tpp, 'payments');
  });

  it('needs an x-idempotency-key and answers a repeat with the same consent', async () => {
    const missing = await consentApi(tpp, 'POST', '/pisp/domestic-payment-consents', { token, body: domesticPaymentBody() });
    expect(missing.status).toBe(400);
    expect(missing.body.Errors[0]).toEqual(expect.objectContaining({ ErrorCode: 'UK.OBIE.Header.Missing', Path: 'x-idempotency-key' }));
    const key = crypto.randomUUID();
    const first = await consentApi(tpp, 'POST', '/pisp/domestic-payment-consents', {
      token,
      body: domesticPaymentBody(),
      headers: { 'x-idempotency-key': key },
    });
    expect(first.status).toBe(201);
    expect(first.body.Data).toEqual(
      expect.objectContaining({
        ConsentId: expect.stringMatching(/^pdc-/),
        Status: 'AwaitingAuthorisation',
        Initiation: expect.objectContaining({ InstructedAmount: { Amount: '42.50', Currency: 'GBP' }, RemittanceInformation: { Reference: 'INV-2026-118' } }),
      }),
    );
    const again = await consentApi(tpp, 'POST', '/pisp/domestic-payment-consents', {
      token,
      body: domesticPaymentBody(),
      headers: { 'x-idempotency-key': key },
    });
    expect(again.status).toBe(200);
    expect(again.body.Data.ConsentId).toBe(first.body.Data.ConsentId);
    const changed = await consentApi(tpp, 'POST', '/pisp/domestic-payment-consents', {
      token,
      body: domesticPaymentBody({ InstructedAmount: { Amount: '99.00', Currency: 'GBP' } }),
      headers: { 'x-idempotency-key': key },
    });
    expect(changed.status).toBe(400);
    expect(changed.body.Errors[0].ErrorCode).toBe('UK.OBIE.Header.Invalid');
  });

  it.each([
    ['a negative amount', { InstructedAmount: { Amount: '-1.00', Currency: 'GBP' } }, /decimal amount/],
    ['a zero amount', { InstructedAmount: { Amount: '0.00', Currency: 'GBP' } }, /more than zero/],
    ['a lower-case currency', { InstructedAmount: { Amount: '1.00', Currency: 'gbp' } }, /ISO 4217/],
    [
      'a sort code account number of the wrong length',
      { CreditorAccount: { SchemeName: 'UK.OBIE.SortCodeAccountNumber', Identification: '123', Name: 'X' } },
      /14 digits/,
    ],
    [
      'a creditor without a name',
      { CreditorAccount: { SchemeName: 'UK.OBIE.SortCodeAccountNumber', Identification: '08080021325698' } },
      /CreditorAccount\.Name/,
    ],
  ])('refuses %s with a message naming the field', async (_name, initiation, message) => {
    const res = await consentApi(tpp, 'POST', '/pisp/domestic-payment-consents', {
      token,
      body: domesticPaymentBody(initiation),
      headers: { 'x-idempotency-key': crypto.randomUUID() },
    });
    expect(res.status).toBe(400);
    expect(res.body.Message).toMatch(message);
  });

  it('is authorised from exactly one account, consumed by the payment, and then refuses a second payment', async () => {
    const consentId = (
      await consentApi(tpp, 'POST', '/pisp/domestic-payment-consents', {
        token,
        body: domesticPaymentBody(),
        headers: { 'x-idempotency-key': crypto.randomUUID() },
      })
    ).body.Data.ConsentId as string;
    const code = await authorize(h, tpp, { scope: 'openid payments', extraParams: { claims: intentClaims(consentId) } });
    const { body: tokens } = await redeem(tpp, code);
    expect(tokens.authorization_details[0]).toEqual(
      expect.objectContaining({
        type: 'payment_initiation',
        consentId,
        instructedAmount: { amount: '42.50', currency: 'GBP' },
        debtorAccount: { accountId: 'acc-alice-current', schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '40001712345678' },
      }),
    );
    const pay = () => tpp.fetch(`${h.issuer}/sandbox-api/domestic-payments`, { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}` } });
    const paid = await pay();
    expect(paid.status).toBe(200);
    expect(((await paid.json()) as { data: { status: string } }).data.status).toBe('AcceptedSettlementInProcess');
    expect((await consentApi(tpp, 'GET', `/pisp/domestic-payment-consents/${consentId}`, { token })).body.Data.Status).toBe('Consumed');
    const twice = await pay();
    expect(twice.status).toBe(400);
    expect(await twice.json()).toEqual({ error: 'invalid_request', error_description: `consent ${consentId} is Consumed and cannot become Consumed` });
  });
});

describe('a TPP without the role', () => {
  it('cannot lodge a payment consent when its software statement grants only AISP', async () => {
    const aisp = await onboardTpp(h, { roles: ['AISP'] });
    try {
      const res = await aisp.fetch(`${h.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'payments', client_id: aisp.client.client_id }),
      });
      // The payments scope is not the AISP's to ask for in the first place.
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_scope');
    } finally {
      await aisp.close();
    }
  });
});

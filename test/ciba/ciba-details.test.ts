import * as oauth from 'oauth4webapi';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';
import { backchannelRequest, CIBA_GRANT, cibaRegistration, pollOnce, startDecoupled } from '../support/ciba.ts';
import { accountAccessBody, clientCredentialsToken, consentApi, intentClaims, introspect, refresh, sandboxAccountsOf } from '../support/consents.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Decoupled authorisation with what the redirect flow carries: RFC 9396 authorization_details, a
 * UK OB intent, Grant Management's merge (into the same grant: the earlier tokens live on), and DPoP-bound tokens (FAPI-CIBA §5.2.2 allows either
 * sender constraint). The customer decides through the sandbox bank-app API with password and code.
 */

let h: Harness;
let tpp: RegisteredTpp;
let dpopTpp: RegisteredTpp;
const alice = SANDBOX_CUSTOMERS.find((c) => c.username === 'alice')!;
const [current, savings] = sandboxAccountsOf('alice') as [string, string];

beforeAll(async () => {
  h = await startMoat();
  tpp = await onboardTpp(h, {
    registration: {
      ...cibaRegistration(),
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials', CIBA_GRANT],
      scope: 'openid offline_access accounts payments grant_management_query grant_management_revoke',
    },
  });
  dpopTpp = await onboardTpp(h, { name: 'DPoP Fintech', registration: { ...cibaRegistration(), dpop_bound_access_tokens: true } });
});

afterAll(async () => {
  await tpp?.close();
  await dpopTpp?.close();
  await h?.close();
});

async function approve(id: string, accounts: string[]): Promise<void> {
  const res = await tpp.fetch(`${h.issuer}/sandbox/app/api/decisions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      username: alice.username,
      password: alice.password,
      code: totpCode(alice.totpSecret, new Date()),
      request: id,
      decision: 'approve',
      accounts,
    }),
  });
  if (res.status !== 200) throw new Error(`approval refused: ${res.status} ${await res.text()}`);
}

async function grantsCall(method: 'GET' | 'DELETE', grantId: string, token: string) {
  const res = await tpp.fetch(`${h.issuer}/grants/${encodeURIComponent(grantId)}`, { method, headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, any>) };
}

/** The accounts of the authorization_details a token response, introspection or grant query carries. */
function accountsOf(body: { authorization_details?: unknown }): string[] {
  return ((body.authorization_details as { accounts: { accountId: string }[] }[])[0]!.accounts ?? []).map((a) => a.accountId).sort();
}

async function tokensOf(client: RegisteredTpp, id: string, options: { DPoP?: oauth.DPoPHandle } = {}) {
  const res = await oauth.backchannelAuthenticationGrantRequest(client.as, client.client, oauth.TlsClientAuth(), id, {
    [oauth.customFetch]: client.fetch,
    ...options,
  });
  return oauth.processBackchannelAuthenticationGrantResponse(client.as, client.client, res);
}

describe('CIBA with authorization_details, intents and grant management', () => {
  it('grants the RFC 9396 detail asked, narrowed to the accounts chosen, in the token response', async () => {
    const detail = { type: 'account_information', permissions: ['ReadAccountsDetail', 'ReadBalances'], expirationDateTime: '2031-01-01T00:00:00Z' };
    const { auth_req_id: id } = await startDecoupled(tpp, { scope: 'openid', login_hint: 'cust-alice', authorization_details: JSON.stringify([detail]) });
    await approve(id, [savings]);
    const tokens = await tokensOf(tpp, id);
    expect(tokens.authorization_details).toEqual([
      expect.objectContaining({
        type: 'account_information',
        permissions: ['ReadAccountsDetail', 'ReadBalances'],
        accounts: [expect.objectContaining({ accountId: savings })],
        consentId: tokens.consent_id,
      }),
    ]);
  });

  it('authorises a lodged UK OB intent and names it in the token response and ID token', async () => {
    const lodged = await consentApi(tpp, 'POST', '/aisp/account-access-consents', {
      token: await clientCredentialsToken(tpp, 'accounts'),
      body: accountAccessBody(),
    });
    const intentId = String(lodged.body.Data.ConsentId);
    const { auth_req_id: id } = await startDecoupled(tpp, { scope: 'openid accounts', login_hint: 'cust-alice', claims: intentClaims(intentId) });
    await approve(id, [current]);
    const tokens = await tokensOf(tpp, id);
    expect(tokens).toMatchObject({ consent_id: intentId, openbanking_intent_id: intentId, grant_id: intentId });
    expect(oauth.getValidatedIdTokenClaims(tokens)).toMatchObject({ openbanking_intent_id: intentId });
    expect(await h.moat.consents.getForClient(intentId, tpp.client.client_id)).toMatchObject({ status: 'Authorised', customerId: 'cust-alice' });
  });

  it('refuses a request naming an intent that is no longer awaiting authorisation', async () => {
    const lodged = await consentApi(tpp, 'POST', '/aisp/account-access-consents', {
      token: await clientCredentialsToken(tpp, 'accounts'),
      body: accountAccessBody(),
    });
    const intentId = String(lodged.body.Data.ConsentId);
    await h.moat.consents.withdraw(intentId, tpp.client.client_id);
    await expect(startDecoupled(tpp, { scope: 'openid accounts', login_hint: 'cust-alice', claims: intentClaims(intentId) })).rejects.toThrow(
      /400 .*invalid_request.*Rejected/,
    );
  });

  it('merges into the same grant with grant_management_action=merge: the earlier tokens stay valid with the merged consent, until the grant is revoked', async () => {
    const detail = JSON.stringify([{ type: 'account_information', permissions: ['ReadAccountsBasic', 'ReadBalances'] }]);
    const first = await startDecoupled(tpp, {
      scope: 'openid',
      login_hint: 'cust-alice',
      binding_message: 'First',
      grant_management_action: 'create',
      authorization_details: detail,
    });
    await approve(first.auth_req_id, [current]);
    const earlier = await tokensOf(tpp, first.auth_req_id);
    const grantId = String(earlier.grant_id);
    const second = await startDecoupled(tpp, {
      scope: 'openid',
      login_hint: 'cust-alice',
      binding_message: 'More',
      grant_management_action: 'merge',
      grant_id: grantId,
      authorization_details: detail,
    });
    await approve(second.auth_req_id, [savings]);
    const merged = await tokensOf(tpp, second.auth_req_id);
    expect(merged.grant_id).toBe(grantId);
    const union = [current, savings].sort();
    expect(accountsOf(merged)).toEqual(union);

    // The grant as the TPP reads it, and the earlier tokens: the union, under the same grant.
    const query = await grantsCall('GET', grantId, await clientCredentialsToken(tpp, 'grant_management_query'));
    expect(query.status).toBe(200);
    expect(accountsOf(query.body)).toEqual(union);
    expect(await introspect(tpp, earlier.access_token)).toMatchObject({ active: true, consent_id: grantId });
    expect(accountsOf(await introspect(tpp, earlier.access_token))).toEqual(union);
    const refreshed = await refresh(tpp, earlier.refresh_token!);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body).toMatchObject({ grant_id: grantId });
    expect(accountsOf(refreshed.body)).toEqual(union);

    // DELETE /grants/{id} ends every token of the grant, earlier and new.
    expect((await grantsCall('DELETE', grantId, await clientCredentialsToken(tpp, 'grant_management_revoke'))).status).toBe(204);
    for (const token of [earlier.access_token, earlier.refresh_token!, String(refreshed.body.access_token), merged.access_token, merged.refresh_token!]) {
      expect(await introspect(tpp, token)).toEqual({ active: false });
    }
    expect(await refresh(tpp, earlier.refresh_token!)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it("refuses to merge or replace another customer's grant with invalid_grant_id, before any customer sees it", async () => {
    const first = await startDecoupled(tpp, { login_hint: 'cust-alice', binding_message: 'Alice', grant_management_action: 'create' });
    await approve(first.auth_req_id, [current]);
    const grantId = String((await tokensOf(tpp, first.auth_req_id)).grant_id);
    for (const action of ['merge', 'replace']) {
      const res = await backchannelRequest(tpp, { login_hint: 'cust-bob', binding_message: 'Bob', grant_management_action: action, grant_id: grantId });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({
        error: 'invalid_grant_id',
        error_description: `grant ${grantId} was given by another customer than the one this request names`,
      });
    }
    expect(await h.moat.ciba!.authorisation.pendingFor('cust-bob')).toEqual([]);
  });

  it('issues DPoP-bound tokens to a client registered for DPoP (RFC 9449)', async () => {
    const { auth_req_id: id } = await startDecoupled(dpopTpp, { login_hint: 'cust-alice', binding_message: 'DPoP' });
    await approve(id, [current]);
    const keys = await oauth.generateKeyPair('ES256');
    const dpop = oauth.DPoP(dpopTpp.client, keys);
    let res = await oauth.backchannelAuthenticationGrantRequest(dpopTpp.as, dpopTpp.client, oauth.TlsClientAuth(), id, {
      [oauth.customFetch]: dpopTpp.fetch,
      DPoP: dpop,
    });
    let tokens;
    try {
      tokens = await oauth.processBackchannelAuthenticationGrantResponse(dpopTpp.as, dpopTpp.client, res);
    } catch (err) {
      // RFC 9449 §8: the server may first ask for a nonce; the handle keeps it for the retry.
      if (!oauth.isDPoPNonceError(err)) throw err;
      res = await oauth.backchannelAuthenticationGrantRequest(dpopTpp.as, dpopTpp.client, oauth.TlsClientAuth(), id, {
        [oauth.customFetch]: dpopTpp.fetch,
        DPoP: dpop,
      });
      tokens = await oauth.processBackchannelAuthenticationGrantResponse(dpopTpp.as, dpopTpp.client, res);
    }
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    expect(await introspect(dpopTpp, tokens.access_token)).toMatchObject({ active: true, cnf: { jkt: expect.any(String) } });
  });

  it('refuses the token request of a DPoP client that sends no proof', async () => {
    const { auth_req_id: id } = await startDecoupled(dpopTpp, { login_hint: 'cust-alice', binding_message: 'No proof' });
    await approve(id, [current]);
    const res = await pollOnce(dpopTpp, id);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: 'invalid_grant',
      error_description: expect.stringMatching(/send a DPoP proof with every token request \(RFC 9449 §5\)/),
    });
  });
});

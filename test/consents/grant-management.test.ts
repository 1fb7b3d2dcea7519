import * as oauth from 'oauth4webapi';
import { clientCredentialsToken, introspect, parError, refresh, sandboxAccountsOf } from '../support/consents.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, Browser, onboardTpp, signInToDashboard, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * FAPI Grant Management for OAuth 2.0 (Implementer's Draft 1) on Moat's consents: grant_id is the
 * consent id; create, merge (into the same oidc-provider grant: the earlier tokens live on) and
 * replace at PAR; the query and revoke endpoints with certificate-bound
 * tokens carrying grant_management_query / grant_management_revoke.
 */

const SCOPES = 'openid offline_access accounts payments grant_management_query grant_management_revoke';
let h: Harness;
let tpp: RegisteredTpp;
let other: RegisteredTpp;
const [current, savings] = sandboxAccountsOf('alice') as [string, string];

beforeAll(async () => {
  h = await startMoat();
  tpp = await onboardTpp(h, { registration: { scope: SCOPES } });
  other = await onboardTpp(h, { name: 'Other Fintech', registration: { scope: SCOPES } });
});

afterAll(async () => {
  await tpp?.close();
  await other?.close();
  await h?.close();
});

async function grantsCall(client: RegisteredTpp, method: 'GET' | 'DELETE', grantId: string, token: string) {
  const res = await client.fetch(`${h.issuer}/grants/${encodeURIComponent(grantId)}`, { method, headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, any>) };
}

/** An authorization with grant management parameters; the customer shares `accounts`. */
async function grantFlow(accounts: string[], params: Record<string, string> = { grant_management_action: 'create' }) {
  return (await authorizationCodeFlow(h, tpp, { scope: 'openid accounts', accounts, extraParams: params })).tokens;
}

/** As grantFlow, asking by RFC 9396 authorization_details: the tokens then carry the accounts granted. */
async function detailFlow(accounts: string[], params: Record<string, string>, more: Record<string, unknown> = {}) {
  const detail = { type: 'account_information', permissions: ['ReadAccountsBasic', 'ReadBalances'], ...more };
  const extraParams = { ...params, authorization_details: JSON.stringify([detail]) };
  return (await authorizationCodeFlow(h, tpp, { scope: 'openid', accounts, extraParams })).tokens;
}

/** The accounts of the authorization_details a token response or introspection carries. */
function accountsOf(body: Record<string, any>): string[] {
  return (body.authorization_details[0].accounts as { accountId: string }[]).map((a) => a.accountId).sort();
}

async function grantedAccounts(grantId: string): Promise<string[]> {
  const query = await grantsCall(tpp, 'GET', grantId, await clientCredentialsToken(tpp, 'grant_management_query'));
  expect(query.status).toBe(200);
  return (query.body.authorization_details[0].accounts as { accountId: string }[]).map((a) => a.accountId).sort();
}

describe('Grant Management discovery (FAPI Grant Management §5.1)', () => {
  it('publishes the actions supported and the grant management endpoint', () => {
    expect(tpp.as).toMatchObject({
      grant_management_actions_supported: ['create', 'merge', 'replace'],
      grant_management_endpoint: `${h.issuer}/grants`,
      grant_management_action_required: false,
    });
    expect(tpp.as.scopes_supported).toEqual(expect.arrayContaining(['grant_management_query', 'grant_management_revoke']));
  });
});

describe('grant_management_action at PAR', () => {
  it('returns the grant_id in the token response: the consent id (create)', async () => {
    const tokens = await grantFlow([current]);
    expect(tokens.grant_id).toEqual(expect.any(String));
    expect(tokens.grant_id).toBe(tokens.consent_id);
  });

  it('refuses an unknown action, merge without a grant_id and create with one, with invalid_request', async () => {
    expect(await parError(tpp, { grant_management_action: 'extend' })).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringMatching(/one of create, merge, replace/),
    });
    expect(await parError(tpp, { grant_management_action: 'merge' })).toMatchObject({
      error: 'invalid_request',
      error_description: expect.stringMatching(/needs the grant_id/),
    });
    expect(await parError(tpp, { grant_management_action: 'create', grant_id: 'sc-1' })).toMatchObject({ error: 'invalid_request' });
  });

  it("answers invalid_grant_id for another client's grant, saying nothing of it", async () => {
    const tokens = await grantFlow([current]);
    const refused = await parError(other, { grant_management_action: 'merge', grant_id: String(tokens.grant_id) });
    expect(refused).toEqual({ error: 'invalid_grant_id', error_description: 'grant_id is not a grant of this client' });
  });

  it('merge: the customer consents to the difference, and it is written into the same grant; the earlier tokens stay valid and carry the merged consent', async () => {
    const first = await detailFlow([current], { grant_management_action: 'create' });
    const grantId = String(first.grant_id);
    expect(await grantedAccounts(grantId)).toEqual([current]);

    const merged = await detailFlow([savings], { grant_management_action: 'merge', grant_id: grantId });
    expect(merged.grant_id).toBe(grantId);
    const union = [current, savings].sort();
    expect(await grantedAccounts(grantId)).toEqual(union);
    // The earlier tokens belong to the same grant: the access token introspects active with the
    // merged accounts, and the refresh token still refreshes, into a token of the merged consent.
    expect(accountsOf(await introspect(tpp, first.access_token))).toEqual(union);
    expect(await introspect(tpp, first.access_token)).toMatchObject({ active: true, consent_id: grantId });
    const refreshed = await refresh(tpp, first.refresh_token!);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body).toMatchObject({ grant_id: grantId, consent_id: grantId });
    expect(accountsOf(refreshed.body)).toEqual(union);
    expect(accountsOf(await introspect(tpp, merged.access_token))).toEqual(union);

    const events = await h.moat.consents.events(grantId);
    expect(events.at(-1)).toMatchObject({ fromStatus: 'Authorised', toStatus: 'Authorised', actor: 'customer', reason: expect.stringMatching(/merged/) });
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      await signInToDashboard(browser);
      const dashboard = await (await browser.request('/account/consents')).text();
      expect(dashboard).toContain(grantId);
    } finally {
      await browser.close();
    }

    // Revoking the merged grant ends every token of it, earlier and new.
    expect((await grantsCall(tpp, 'DELETE', grantId, await clientCredentialsToken(tpp, 'grant_management_revoke'))).status).toBe(204);
    for (const token of [first.access_token, first.refresh_token!, String(refreshed.body.access_token), merged.access_token, merged.refresh_token!]) {
      expect(await introspect(tpp, token)).toEqual({ active: false });
    }
    expect(await refresh(tpp, first.refresh_token!)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await refresh(tpp, merged.refresh_token!)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it('merge: the grant then lives as long as the merged consent', async () => {
    const day = 86_400_000;
    const first = await detailFlow([current], { grant_management_action: 'create' }, { expirationDateTime: new Date(Date.now() + day).toISOString() });
    const grantId = String(first.grant_id);
    const later = new Date(Date.now() + 2 * day);
    await detailFlow([savings], { grant_management_action: 'merge', grant_id: grantId }, { expirationDateTime: later.toISOString() });
    const consent = await h.moat.consents.getForClient(grantId, tpp.client.client_id);
    expect(consent.expiresAt?.getTime()).toBe(Date.parse(later.toISOString()));
    // The grant was capped at the first consent's day; it now runs to the merged consent's expiry.
    const grant = await h.moat.provider.Grant.find(consent.grantId!);
    expect(Math.abs(grant!.exp! - later.getTime() / 1000)).toBeLessThan(60);
  });

  it('replace: the new grant is authorised and the old one revoked with its tokens', async () => {
    const first = await grantFlow([current]);
    const replaced = await grantFlow([savings], { grant_management_action: 'replace', grant_id: String(first.grant_id) });
    expect(replaced.grant_id).not.toBe(first.grant_id);
    expect(await h.moat.consents.getForClient(String(first.grant_id), tpp.client.client_id)).toMatchObject({ status: 'Revoked' });
    expect(await introspect(tpp, first.access_token)).toEqual({ active: false });
    expect(await refresh(tpp, first.refresh_token!)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await grantedAccounts(String(replaced.grant_id))).toEqual([savings]);
  });

  it('refuses to merge into a revoked grant with invalid_grant_id', async () => {
    const first = await grantFlow([current]);
    await h.moat.consents.revoke(String(first.grant_id), { actor: 'customer', actorId: 'cust-alice' });
    expect(await parError(tpp, { grant_management_action: 'merge', grant_id: String(first.grant_id) })).toMatchObject({
      error: 'invalid_grant_id',
      error_description: expect.stringMatching(/is Revoked/),
    });
  });
});

describe('the grant management endpoint (FAPI Grant Management §7)', () => {
  it('GET answers the scopes, authorization_details with the accounts granted, and the status', async () => {
    const tokens = await grantFlow([current, savings]);
    const query = await grantsCall(tpp, 'GET', String(tokens.grant_id), await clientCredentialsToken(tpp, 'grant_management_query'));
    expect(query.status).toBe(200);
    expect(query.body).toMatchObject({
      scopes: [{ scope: 'openid accounts' }],
      authorization_details: [
        { type: 'account_information', accounts: [expect.objectContaining({ accountId: current }), expect.objectContaining({ accountId: savings })] },
      ],
      status: 'Authorised',
    });
  });

  it("answers 404 invalid_grant_id for another client's grant, disclosing nothing", async () => {
    const tokens = await grantFlow([current]);
    const query = await grantsCall(other, 'GET', String(tokens.grant_id), await clientCredentialsToken(other, 'grant_management_query'));
    expect(query).toEqual({ status: 404, body: { error: 'invalid_grant_id', error_description: 'no such grant for this client' } });
    const unknown = await grantsCall(tpp, 'GET', 'sc-00000000-0000-0000-0000-000000000000', await clientCredentialsToken(tpp, 'grant_management_query'));
    expect(unknown).toEqual(query);
  });

  it('refuses a token without grant_management_query with 403 insufficient_scope', async () => {
    const tokens = await grantFlow([current]);
    const query = await grantsCall(tpp, 'GET', String(tokens.grant_id), await clientCredentialsToken(tpp, 'grant_management_revoke'));
    expect(query).toMatchObject({ status: 403, body: { error: 'insufficient_scope' } });
  });

  it('refuses the token presented without the certificate it is bound to (RFC 8705 §3)', async () => {
    const tokens = await grantFlow([current]);
    const token = await clientCredentialsToken(tpp, 'grant_management_query');
    const { tlsFetch } = await import('../support/tpp-client.ts');
    const anonymous = tlsFetch(tpp.creds.serverCaPem);
    try {
      const res = await anonymous(`${h.issuer}/grants/${String(tokens.grant_id)}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'invalid_token' });
    } finally {
      await anonymous.close();
    }
  });

  it('DELETE revokes the consent and every token at once; the grant is then not found', async () => {
    const tokens = await grantFlow([current]);
    const grantId = String(tokens.grant_id);
    const revoke = await grantsCall(tpp, 'DELETE', grantId, await clientCredentialsToken(tpp, 'grant_management_revoke'));
    expect(revoke.status).toBe(204);
    expect(await h.moat.consents.getForClient(grantId, tpp.client.client_id)).toMatchObject({ status: 'Revoked' });
    expect(await introspect(tpp, tokens.access_token)).toEqual({ active: false });
    const refreshed = await oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.refresh_token!, {
      [oauth.customFetch]: tpp.fetch,
    });
    expect(refreshed.status).toBe(400);
    const again = await grantsCall(tpp, 'GET', grantId, await clientCredentialsToken(tpp, 'grant_management_query'));
    expect(again.status).toBe(404);
    expect((await grantsCall(tpp, 'DELETE', grantId, await clientCredentialsToken(tpp, 'grant_management_revoke'))).status).toBe(404);
  });

  it('answers 404 for an expired grant', async () => {
    const expiration = new Date(Date.now() + 86_400_000).toISOString();
    const { tokens } = await authorizationCodeFlow(h, tpp, {
      scope: 'openid',
      accounts: [current],
      extraParams: {
        grant_management_action: 'create',
        authorization_details: JSON.stringify([{ type: 'account_information', permissions: ['ReadAccountsBasic'], expirationDateTime: expiration }]),
      },
    });
    const grantId = String(tokens.grant_id);
    expect(await h.moat.consents.expireDue(new Date(Date.now() + 2 * 86_400_000))).toBeGreaterThan(0);
    expect(await h.moat.consents.getForClient(grantId, tpp.client.client_id)).toMatchObject({ status: 'Expired' });
    expect((await grantsCall(tpp, 'GET', grantId, await clientCredentialsToken(tpp, 'grant_management_query'))).status).toBe(404);
  });
});

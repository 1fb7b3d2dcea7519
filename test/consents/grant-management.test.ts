import * as oauth from 'oauth4webapi';
import { clientCredentialsToken, introspect, parError, sandboxAccountsOf } from '../support/consents.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, Browser, onboardTpp, signInToDashboard, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * FAPI Grant Management for OAuth 2.0 (Implementer's Draft 1) on Moat's consents: grant_id is the
 * consent id; create, merge and replace at PAR; the query and revoke endpoints with certificate-bound
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

  it('merge: adds what the customer grants now to the same grant, ends the old tokens, and the dashboard shows one consent', async () => {
    const first = await grantFlow([current]);
    const grantId = String(first.grant_id);
    expect(await grantedAccounts(grantId)).toEqual([current]);

    const merged = await grantFlow([savings], { grant_management_action: 'merge', grant_id: grantId });
    expect(merged.grant_id).toBe(grantId);
    expect(await grantedAccounts(grantId)).toEqual([current, savings].sort());
    // The grant as it was is gone with its tokens; the new tokens carry the merged grant.
    expect(await introspect(tpp, first.access_token)).toEqual({ active: false });
    expect(await introspect(tpp, merged.access_token)).toMatchObject({ active: true, consent_id: grantId });

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
  });

  it('replace: the new grant is authorised and the old one revoked with its tokens', async () => {
    const first = await grantFlow([current]);
    const replaced = await grantFlow([savings], { grant_management_action: 'replace', grant_id: String(first.grant_id) });
    expect(replaced.grant_id).not.toBe(first.grant_id);
    expect(await h.moat.consents.getForClient(String(first.grant_id), tpp.client.client_id)).toMatchObject({ status: 'Revoked' });
    expect(await introspect(tpp, first.access_token)).toEqual({ active: false });
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

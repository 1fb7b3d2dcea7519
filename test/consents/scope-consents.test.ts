import * as oauth from 'oauth4webapi';
import { SANDBOX_ACCOUNTS } from '../../src/customers/account-directory.ts';
import {
  authorizationCodeFlow,
  Browser,
  hiddenField,
  pushAuthorization,
  type RegisteredTpp,
  useMoatWithTpp,
  signInAtInteraction,
} from '../support/tpp-client.ts';
import { formatDate } from '../../src/consents/presentation.ts';
import type { Harness } from '../support/moat-harness.ts';

/*
 * A consent asked for with scopes alone (`scope=openid accounts`, the README's curl quick start):
 * the customer chooses among their own accounts — the account directory's, the same the consent
 * screens of intents and authorization_details offer — the consent records them, and the sandbox
 * API shows those accounts, read from that same directory. No made-up accounts.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

interface ApiAccount {
  accountId: string;
  nickname: string;
  currency: string;
  identification: string;
  balance: string;
}

async function apiAccounts(accessToken: string): Promise<{ status: number; accounts: ApiAccount[] }> {
  const res = await tpp.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${accessToken}` } });
  const body = (await res.json()) as { data?: { accounts: ApiAccount[] } };
  return { status: res.status, accounts: body.data?.accounts ?? [] };
}

const own = (customerId: string) => SANDBOX_ACCOUNTS.filter((a) => a.customerId === customerId);

describe('a scope-only account consent (scope=openid accounts)', () => {
  it('offers the customer their own accounts on the consent screen, all ticked', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
      const login = await signInAtInteraction(browser, uid, hiddenField(await start.res.text(), 'csrf'));
      const page = await login.res.text();
      const offered = [...page.matchAll(/<input type="checkbox" name="accounts" id="[^"]*" value="([^"]*)" checked>/g)].map((m) => m[1]);
      expect(offered).toEqual(
        own('cust-alice')
          .map((a) => a.id)
          .sort(),
      );
      expect(page).toContain('Rainy day saver');
      // Issue 18 point 5: the same questions as authorization_details — what, for how long (consents.scopeAccessDays: 90).
      expect(page).toContain('Your account details');
      expect(page).toContain(`Until <strong>${formatDate(new Date(Date.now() + 90 * 86_400_000))}</strong>`);
    } finally {
      await browser.close();
    }
  });

  it('shares the accounts the customer chose: the consent records them and the sandbox API shows them from the account directory', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { accounts: ['acc-alice-savings', 'acc-alice-euro'] });
    const consent = await h.moat.consents.getForCustomer(String(tokens.consent_id), 'cust-alice');
    expect(consent).toEqual(expect.objectContaining({ kind: 'scope', origin: 'scope', status: 'Authorised' }));
    // The duration the page stated is the consent's: it expires then, like one with an expirationDateTime.
    expect(Math.abs(consent.expiresAt!.getTime() - (Date.now() + 90 * 86_400_000))).toBeLessThan(120_000);
    expect(consent.granted?.type === 'account_information' ? consent.granted.accounts.map((a) => a.accountId) : []).toEqual([
      'acc-alice-euro',
      'acc-alice-savings',
    ]);
    const { status, accounts } = await apiAccounts(tokens.access_token);
    expect(status).toBe(200);
    expect(accounts).toEqual([
      expect.objectContaining({
        accountId: 'acc-alice-euro',
        nickname: 'Euro account',
        currency: 'EUR',
        identification: 'GB33MOAT40001711223344',
        balance: expect.stringMatching(/^\d+\.\d{2}$/),
      }),
      expect.objectContaining({ accountId: 'acc-alice-savings', nickname: 'Rainy day saver', currency: 'GBP', identification: '40001787654321' }),
    ]);
  });

  it('shares nothing by default: a form without accounts (a script posting only csrf and decision) gets the page back, 400, asking for a choice', async () => {
    await expect(authorizationCodeFlow(h, tpp, { accounts: [] })).rejects.toThrow(
      /^consent did not redirect to the TPP: 400 [\s\S]*Choose at least one account to share/,
    );
  });

  it('shares every account when the form sends every one the page offers, as the page has them ticked', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp);
    const { accounts } = await apiAccounts(tokens.access_token);
    expect(accounts.map((a) => a.accountId)).toEqual(
      own('cust-alice')
        .map((a) => a.id)
        .sort(),
    );
  });

  it('shows another customer only their own account', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { customer: { username: 'bob', password: 'bob-sandbox' } });
    const { accounts } = await apiAccounts(tokens.access_token);
    expect(accounts).toEqual([expect.objectContaining({ accountId: 'acc-bob-current', nickname: 'Current account', identification: '40001722334455' })]);
  });

  it("refuses an account that is not the customer's", async () => {
    await expect(authorizationCodeFlow(h, tpp, { accounts: ['acc-bob-current'] })).rejects.toThrow(/Choose from the accounts listed/);
  });

  it('keeps the shared accounts across a refresh', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { accounts: ['acc-alice-current'] });
    const refreshed = await oauth.processRefreshTokenResponse(
      tpp.as,
      tpp.client,
      await oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.refresh_token!, { [oauth.customFetch]: tpp.fetch }),
    );
    expect((await apiAccounts(refreshed.access_token)).accounts.map((a) => a.accountId)).toEqual(['acc-alice-current']);
  });
});

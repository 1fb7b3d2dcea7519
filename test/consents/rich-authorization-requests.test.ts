import { withClockAhead } from '../support/clock.ts';
import type { Harness } from '../support/moat-harness.ts';
import { authorize, Browser, hiddenField, onboardTpp, pushAuthorization, useMoatWithTpp, customerConsents, type RegisteredTpp } from '../support/tpp-client.ts';
import { introspect, parError, redeem, refresh } from '../support/consents.ts';

/*
 * RFC 9396 authorization_details in the pushed authorization request: validated by schema and by
 * the TPP's roles at PAR, narrowed by the customer, and carried exactly as granted by the code, the
 * token response and introspection.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

const accountInformation = (extra: Record<string, unknown> = {}) =>
  JSON.stringify([
    {
      type: 'account_information',
      permissions: ['ReadAccountsDetail', 'ReadBalances', 'ReadTransactionsDetail', 'ReadTransactionsCredits', 'ReadTransactionsDebits', 'ReadParty'],
      expirationDateTime: '2031-06-30T00:00:00Z',
      ...extra,
    },
  ]);

const paymentInitiation = (extra: Record<string, unknown> = {}) =>
  JSON.stringify([
    {
      type: 'payment_initiation',
      instructedAmount: { amount: '12.34', currency: 'GBP' },
      creditorName: 'Corner Shop Ltd',
      creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223344556677' },
      remittanceInformation: { reference: 'ORDER-55' },
      ...extra,
    },
  ]);

describe('authorization_details at PAR (RFC 9396 §5: invalid_authorization_details)', () => {
  it.each([
    ['an unknown type', JSON.stringify([{ type: 'crypto_staking' }]), /unsupported authorization details type/],
    ['not JSON', '[{', /could not parse/],
    ['two details at once', JSON.stringify([JSON.parse(accountInformation())[0], JSON.parse(paymentInitiation())[0]]), /one authorization detail per request/],
    ['an unknown field', accountInformation({ everything: true }), /authorization_details\[0\]: Unrecognized key: "everything"/],
    ['an unknown permission', accountInformation({ permissions: ['ReadMinds'] }), /authorization_details\[0\]\.permissions\[0\]: unknown permission code/],
    [
      'a malformed amount',
      paymentInitiation({ instructedAmount: { amount: '12,34', currency: 'GBP' } }),
      /instructedAmount\.amount: expected a decimal amount like 10\.00/,
    ],
    [
      'an IBAN with spaces',
      paymentInitiation({ creditorAccount: { schemeName: 'UK.OBIE.IBAN', identification: 'GB33 BUKB 2020 1555 5555 55' } }),
      /creditorAccount\.identification: an IBAN/,
    ],
    [
      'a transaction range that ends before it starts',
      accountInformation({ transactionFromDateTime: '2026-02-01T00:00:00Z', transactionToDateTime: '2026-01-01T00:00:00Z' }),
      /starts after it ends/,
    ],
  ])('refuses %s', async (_name, details, message) => {
    const result = await parError(tpp, { authorization_details: details });
    expect(result.error).toBe('invalid_authorization_details');
    expect(result.error_description).toMatch(message);
  });

  it('refuses payment_initiation to a TPP whose software statement grants only AISP', async () => {
    const aisp = await onboardTpp(h, { roles: ['AISP'] });
    try {
      expect(aisp.client.authorization_details_types).toEqual(['account_information']);
      const result = await parError(aisp, { authorization_details: paymentInitiation() });
      expect(result).toEqual({
        error: 'invalid_authorization_details',
        error_description: "authorization details type 'payment_initiation' is not allowed for this client",
      });
    } finally {
      await aisp.close();
    }
  });
});

describe('authorization_details that stop being valid while the customer signs in', () => {
  it('send the TPP invalid_authorization_details (RFC 9396 §5), not a server error', async () => {
    const expiry = Date.now() + 60_000;
    const { requestUri } = await pushAuthorization(tpp, {
      extraParams: { authorization_details: accountInformation({ expirationDateTime: new Date(expiry).toISOString() }) },
    });
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      expect(start.location).toBeUndefined();
      const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
      const loginPage = await start.res.text();
      // The customer takes longer than the TPP's expiry allowed: the clock moves past it (test/support/clock.ts).
      const login = await withClockAhead(Math.max(0, expiry - Date.now()) + 1000, () =>
        browser.follow(`/interaction/${uid}/login`, {
          method: 'POST',
          form: { username: 'alice', password: 'alice-sandbox', csrf: hiddenField(loginPage, 'csrf') },
        }),
      );
      expect(login.location).toBeDefined();
      const callback = new URL(login.location!);
      expect(callback.searchParams.get('error')).toBe('invalid_authorization_details');
      expect(callback.searchParams.get('error_description')).toMatch(/expirationDateTime: the expiry is in the past/);
    } finally {
      await browser.close();
    }
  });
});

describe('an account_information consent the customer narrows', () => {
  let tokens: Record<string, any>;
  beforeAll(async () => {
    const code = await authorize(h, tpp, {
      scope: 'openid accounts',
      extraParams: { authorization_details: accountInformation() },
      accounts: ['acc-alice-current', 'acc-alice-euro'],
      permissionGroups: ['account-details', 'transactions'],
    });
    tokens = (await redeem(tpp, code)).body;
  });

  it('grants only the chosen accounts and permission groups, never what was refused', () => {
    const [granted] = tokens.authorization_details;
    expect(granted).toEqual({
      type: 'account_information',
      consentId: expect.stringMatching(/^aac-/),
      expirationDateTime: '2031-06-30T00:00:00Z',
      permissions: ['ReadAccountsDetail', 'ReadBalances', 'ReadTransactionsDetail', 'ReadTransactionsCredits', 'ReadTransactionsDebits'],
      accounts: [
        { accountId: 'acc-alice-current', schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '40001712345678' },
        { accountId: 'acc-alice-euro', schemeName: 'UK.OBIE.IBAN', identification: 'GB33MOAT40001711223344' },
      ],
    });
    expect(granted.permissions).not.toContain('ReadParty');
    expect(tokens.consent_id).toBe(granted.consentId);
    expect(tokens.openbanking_intent_id).toBeUndefined();
  });

  it("shows the same at introspection, for the bank's APIs to enforce", async () => {
    const result = await introspect(tpp, tokens.access_token as string);
    expect(result.consent_id).toBe(tokens.consent_id);
    expect(result.authorization_details).toEqual(tokens.authorization_details);
  });

  it('lets the sandbox API show the granted accounts and no others', async () => {
    const res = await tpp.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const body = (await res.json()) as { data: { accounts: { accountId: string }[] } };
    expect(body.data.accounts.map((a) => a.accountId)).toEqual(['acc-alice-current', 'acc-alice-euro']);
  });

  it('keeps the granted details through a refresh', async () => {
    const refreshed = await refresh(tpp, tokens.refresh_token as string);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.authorization_details).toEqual(tokens.authorization_details);
    expect(refreshed.body.consent_id).toBe(tokens.consent_id);
  });

  it('records the consent as Authorised for alice, with the audit trail', async () => {
    const consent = await h.moat.consents.getForCustomer(tokens.consent_id as string, 'cust-alice');
    expect(consent).toEqual(
      expect.objectContaining({ status: 'Authorised', origin: 'authorization_details', kind: 'account_access', clientId: tpp.client.client_id }),
    );
    expect((await h.moat.consents.events(consent.id)).map((e) => e.toStatus)).toEqual(['AwaitingAuthorisation', 'Authorised']);
    await expect(h.moat.consents.getForCustomer(consent.id, 'cust-bob')).rejects.toThrow(/does not exist/);
  });
});

describe('the consent screen refuses a choice outside the rules', () => {
  async function choose(details: string, choices: Parameters<typeof customerConsents>[3]) {
    const { requestUri } = await pushAuthorization(tpp, { extraParams: { authorization_details: details } });
    return customerConsents(h, tpp, requestUri, choices).then(
      () => 'redirected',
      (err: Error) => err.message,
    );
  }

  it('needs at least one account for account access', async () => {
    expect(await choose(accountInformation(), { accounts: [] })).toMatch(/400 .*Choose at least one account to share/s);
  });

  it('needs exactly one account for a payment', async () => {
    expect(await choose(paymentInitiation(), { accounts: ['acc-alice-current', 'acc-alice-savings'] })).toMatch(/400 .*Choose the one account to pay from/s);
  });

  it("does not accept an account that is not the customer's", async () => {
    expect(await choose(accountInformation(), { accounts: ['acc-bob-current'] })).toMatch(/400 .*Choose from the accounts listed/s);
  });

  it('needs at least one permission group kept', async () => {
    expect(await choose(accountInformation(), { permissionGroups: [] })).toMatch(/400 .*Keep at least one kind of information/s);
  });

  it('offers only the accounts the TPP named, when it named some', async () => {
    const named = accountInformation({ accounts: [{ schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '40001787654321' }] });
    expect(await choose(named, { accounts: ['acc-alice-current'] })).toMatch(/400 .*Choose from the accounts listed/s);
    expect(await choose(named, { accounts: ['acc-alice-savings'] })).toBe('redirected');
  });

  it('offers only accounts in the payment currency', async () => {
    expect(await choose(paymentInitiation(), { accounts: ['acc-alice-euro'] })).toMatch(/400 .*Choose from the accounts listed/s);
  });
});

describe('consent expiry', () => {
  it("ends a consent's tokens at its expirationDateTime, then records it Expired", async () => {
    // A minute: the whole flow fits in it on a loaded CI machine; the clock then moves past it
    // instead of waiting it out (test/support/clock.ts).
    const expiresAt = Date.now() + 60_000;
    const expiry = new Date(expiresAt).toISOString();
    const code = await authorize(h, tpp, { extraParams: { authorization_details: accountInformation({ expirationDateTime: expiry }) } });
    const { body: tokens } = await redeem(tpp, code);
    // No token outlives its consent: the lifetimes are capped by the expiry.
    expect(tokens.expires_in).toBeLessThanOrEqual(60);
    expect((await introspect(tpp, tokens.access_token as string)).active).toBe(true);
    await withClockAhead(Math.max(0, expiresAt - Date.now()) + 500, async () => {
      expect((await introspect(tpp, tokens.refresh_token as string)).active).toBe(false);
      expect((await refresh(tpp, tokens.refresh_token as string)).body.error).toBe('invalid_grant');
      expect(await h.moat.consents.expireDue()).toBeGreaterThanOrEqual(1);
      expect((await h.moat.consents.getForClient(tokens.consent_id as string, tpp.client.client_id)).status).toBe('Expired');
    });
  });
});

describe('a payment_initiation consent', () => {
  it('pays once from the chosen account and is then Consumed', async () => {
    const code = await authorize(h, tpp, {
      scope: 'openid payments',
      extraParams: { authorization_details: paymentInitiation() },
      accounts: ['acc-alice-savings'],
    });
    const { body: tokens } = await redeem(tpp, code);
    expect(tokens.authorization_details[0].debtorAccount.accountId).toBe('acc-alice-savings');
    const pay = () => tpp.fetch(`${h.issuer}/sandbox-api/domestic-payments`, { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect((await pay()).status).toBe(200);
    expect((await pay()).status).toBe(400);
    expect((await h.moat.consents.getForClient(tokens.consent_id as string, tpp.client.client_id)).status).toBe('Consumed');
  });
});

describe('a denied request', () => {
  it('returns access_denied to the TPP and is recorded as Rejected', async () => {
    const { requestUri } = await pushAuthorization(tpp, { extraParams: { authorization_details: accountInformation() } });
    const location = new URL(await customerConsents(h, tpp, requestUri, { decision: 'deny' }));
    expect(location.searchParams.get('error')).toBe('access_denied');
    const consents = await h.moat.consents.listForCustomer('cust-alice');
    expect(consents.some((c) => c.status === 'Rejected' && c.origin === 'authorization_details')).toBe(true);
  });
});

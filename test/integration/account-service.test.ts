import { scrapeMetrics, sampleSum } from '../support/admin-metrics.ts';
import { bankAccounts, startAccountService, type TestAccountService } from '../support/account-service.ts';
import { sandboxAccountsOf } from '../support/consents.ts';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import {
  accountChoices,
  authorizationCodeFlow,
  Browser,
  hiddenField,
  onboardTpp,
  pushAuthorization,
  signInAtInteraction,
  type RegisteredTpp,
} from '../support/tpp-client.ts';

/*
 * Accounts from the bank's account service (issue 17 point 2), through a whole Moat: a real HTTPS
 * service with mutual TLS answers for the bank, a TPP drives PAR → consent → token, and the
 * customer's consent page shows what the service said — or, when it cannot say, a page that says
 * so and lets the customer try again.
 */

let service: TestAccountService;
let h: Harness;
let tpp: RegisteredTpp;
beforeAll(async () => {
  service = await startAccountService({ accounts: bankAccounts() });
  h = await startMoat({
    config: {
      accounts: {
        source: 'http',
        http: {
          url: service.url,
          ...service.files,
          timeoutMs: 2000,
          retries: 1,
          retryBackoffMs: 1,
          // Not opened by these tests' failures: its own tests drive it with a controlled clock.
          circuitBreaker: { failureThreshold: 1000, openSeconds: 30 },
        },
      },
    },
  });
  tpp = await onboardTpp(h, { roles: ['AISP', 'PISP'] });
});
afterAll(async () => {
  await tpp?.close();
  await h?.close();
  await service?.close();
});
afterEach(() => {
  service.behaviour = 'good';
  service.queue = [];
  service.funds.clear();
});

/** PAR, then sign in as Alice: the page the consent step shows, and the interaction it belongs to. */
async function signInForConsent(
  browser: Browser,
  options: Parameters<typeof pushAuthorization>[1] = {},
): Promise<{ res: Response; html: string; uid: string; url: string }> {
  const { requestUri } = await pushAuthorization(tpp, options);
  const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
  const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
  // Password, then the one-time code (RTS on SCA Art. 4): the accounts are fetched for the consent step.
  const login = await signInAtInteraction(browser, uid, hiddenField(await start.res.text(), 'csrf'));
  return { res: login.res, html: await login.res.text(), uid: new URL(login.url, h.issuer).pathname.split('/')[2]!, url: login.url };
}

async function withBrowser<T>(fn: (browser: Browser) => Promise<T>): Promise<T> {
  const browser = new Browser(h, tpp.creds.serverCaPem);
  try {
    return await fn(browser);
  } finally {
    await browser.close();
  }
}

function paymentDetails(amount: string): Record<string, string> {
  return {
    authorization_details: JSON.stringify([
      {
        type: 'payment_initiation',
        instructedAmount: { amount, currency: 'GBP' },
        creditorName: 'Acme Energy',
        creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223344556677' },
      },
    ]),
  };
}

describe("accounts from the bank's account service (accounts.source: http)", () => {
  it('takes a TPP through consent with the accounts the service lists, and its API shows those accounts', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { scope: 'openid accounts' });
    const res = await tpp.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { accounts: { accountId: string }[] } };
    expect(body.data.accounts.map((a) => a.accountId)).toEqual(['bank-alice-bills', 'bank-alice-holiday']);
    expect(service.requests.every((r) => r.clientCn === 'moat')).toBe(true);
  });

  it("shows the service's accounts on the consent page, and asks the service once for the page and the form posted from it", () =>
    withBrowser(async (browser) => {
      service.requests = [];
      const { html, uid } = await signInForConsent(browser, { scope: 'openid accounts' });
      expect(html).toContain('Bills account');
      expect(html).toContain('Holiday fund');
      expect(html).not.toContain('Everyday current account');
      expect(accountChoices(html).values).toEqual(['bank-alice-bills', 'bank-alice-holiday']);
      const approved = await browser.follow(`/interaction/${uid}/consent`, {
        method: 'POST',
        form: [
          ['csrf', hiddenField(html, 'csrf')],
          ['decision', 'approve'],
          ['accounts', 'bank-alice-bills'],
        ],
      });
      expect(approved.location).toContain('code=');
      expect(service.requests.filter((r) => r.path.endsWith('/accounts'))).toHaveLength(1);
    }));

  it('shows "your accounts cannot be shown right now" (503, never a 500) when the service fails, and the customer can try again and finish', () =>
    withBrowser(async (browser) => {
      service.behaviour = 'error';
      const { res, html, uid } = await signInForConsent(browser, { scope: 'openid accounts' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(html).toContain('Your accounts cannot be shown right now');
      expect(html).toContain(`href="/interaction/${uid}">Try again</a>`);
      expect(html).not.toContain('Error:');
      expect(h.logs).toContainEqual(expect.objectContaining({ event: 'consent.accounts_unavailable', reason: 'service_error' }));

      service.behaviour = 'good';
      const retried = await browser.request(`/interaction/${uid}`);
      expect(retried.status).toBe(200);
      const consentPage = await retried.text();
      expect(consentPage).toContain('Bills account');
      const approved = await browser.follow(`/interaction/${uid}/consent`, {
        method: 'POST',
        form: [
          ['csrf', hiddenField(consentPage, 'csrf')],
          ['decision', 'approve'],
          ['accounts', 'bank-alice-holiday'],
        ],
      });
      const params = new URL(approved.location!).searchParams;
      expect(params.get('code')).toBeTruthy();
    }));

  it('lets the customer cancel from that page: the TPP gets access_denied', () =>
    withBrowser(async (browser) => {
      service.behaviour = 'slow';
      // Held answers time out: the page comes when the client gives up (accounts.http.timeoutMs, each attempt).
      const { res, html, uid } = await signInForConsent(browser, { scope: 'openid accounts' });
      service.releaseSlow();
      expect(res.status).toBe(503);
      expect(h.logs).toContainEqual(expect.objectContaining({ event: 'consent.accounts_unavailable', reason: 'timeout' }));
      const cancelled = await browser.follow(`/interaction/${uid}/consent`, { method: 'POST', form: { csrf: hiddenField(html, 'csrf'), decision: 'deny' } });
      expect(new URL(cancelled.location!).searchParams.get('error')).toBe('access_denied');
    }));

  it('refuses a malformed answer with the same page, and logs which fields broke the contract', () =>
    withBrowser(async (browser) => {
      service.behaviour = 'malformed';
      const { res, html } = await signInForConsent(browser, { scope: 'openid accounts' });
      expect(res.status).toBe(503);
      expect(html).toContain('Your accounts cannot be shown right now');
      const line = h.logs.find((l) => l.event === 'account_service.malformed_answer');
      expect(line?.fields).toEqual([expect.stringMatching(/^accounts\[0\]\.currency: /), expect.stringMatching(/^accounts\[0\]\.identification: /)]);
    }));

  it('offers for a payment only the accounts the service says can pay it', () =>
    withBrowser(async (browser) => {
      service.funds.set('bank-alice-bills', 100);
      service.funds.set('bank-alice-holiday', 10);
      const { html, uid } = await signInForConsent(browser, { scope: 'openid payments', extraParams: paymentDetails('42.50') });
      expect(accountChoices(html)).toEqual({ type: 'radio', values: ['bank-alice-bills'] });
      expect(service.requests.some((r) => r.path === '/bank/customers/cust-alice/accounts/bank-alice-holiday/can-pay?amount=42.50&currency=GBP')).toBe(true);
      // An account the service said cannot pay is refused if the form names it anyway.
      const forged = await browser.request(`/interaction/${uid}/consent`, {
        method: 'POST',
        form: [
          ['csrf', hiddenField(html, 'csrf')],
          ['decision', 'approve'],
          ['accounts', 'bank-alice-holiday'],
        ],
      });
      expect(forged.status).toBe(400);
      expect(await forged.text()).toContain('Choose from the accounts listed.');
      const approved = await browser.follow(`/interaction/${uid}/consent`, {
        method: 'POST',
        form: [
          ['csrf', hiddenField(html, 'csrf')],
          ['decision', 'approve'],
          ['accounts', 'bank-alice-bills'],
        ],
      });
      expect(new URL(approved.location!).searchParams.get('code')).toBeTruthy();
    }));

  it('tells the customer when no account can pay the amount', () =>
    withBrowser(async (browser) => {
      service.funds.set('bank-alice-bills', 100);
      service.funds.set('bank-alice-holiday', 10);
      const { html } = await signInForConsent(browser, { scope: 'openid payments', extraParams: paymentDetails('5000') });
      expect(accountChoices(html).type).toBe('none');
      expect(html).toContain('You cannot make this payment from any of your accounts.');
      // Each account left out is named with the reason (issue 18 defect 2), and nothing can be confirmed.
      expect(html).toContain('not enough money available');
      expect(html).not.toContain('Confirm payment</button>');
    }));

  it('answers the sandbox API 503 temporarily_unavailable, not a 500, while the service fails', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { scope: 'openid accounts' });
    service.behaviour = 'error';
    const res = await tpp.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'the account directory is unavailable; try again shortly' });
  });

  it('counts requests, outcomes and retries in moat_account_service_* metrics', async () => {
    service.queue = ['error'];
    await withBrowser(async (browser) => {
      expect((await signInForConsent(browser, { scope: 'openid accounts' })).res.status).toBe(200);
    });
    const metrics = await scrapeMetrics(h);
    expect(sampleSum(metrics, 'moat_account_service_requests_total', { operation: 'list_accounts', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sampleSum(metrics, 'moat_account_service_requests_total', { operation: 'list_accounts', outcome: 'service_error' })).toBeGreaterThanOrEqual(1);
    expect(sampleSum(metrics, 'moat_account_service_retries_total', { operation: 'list_accounts' })).toBeGreaterThanOrEqual(1);
    expect(sampleSum(metrics, 'moat_account_service_requests_total', { operation: 'can_pay', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^moat_account_service_circuit_state 0$/m);
  });
});

describe("the account service's circuit breaker in a running Moat", () => {
  let guarded: Harness;
  let guardedTpp: RegisteredTpp;
  // The guarded Moat's clock: moved past openSeconds instead of waiting for it.
  let skewMs = 0;
  const now = () => new Date(Date.now() + skewMs);
  beforeAll(async () => {
    guarded = await startMoat({
      config: {
        accounts: { source: 'http', http: { url: service.url, ...service.files, retries: 0, circuitBreaker: { failureThreshold: 2, openSeconds: 3600 } } },
      },
      now,
    });
    guardedTpp = await onboardTpp(guarded);
  });
  afterAll(async () => {
    await guardedTpp?.close();
    await guarded?.close();
  });

  /** PAR, password and code (computed on the guarded Moat's clock): the consent step's page. */
  const consentStep = async () => {
    const browser = new Browser(guarded, guardedTpp.creds.serverCaPem);
    try {
      const { requestUri } = await pushAuthorization(guardedTpp);
      const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: guardedTpp.client.client_id, request_uri: requestUri })}`);
      const uid = new URL(start.url, guarded.issuer).pathname.split('/')[2]!;
      const login = await signInAtInteraction(browser, uid, hiddenField(await start.res.text(), 'csrf'), undefined, {
        totpCode: totpCode(SANDBOX_CUSTOMERS[0].totpSecret, now()),
      });
      return { status: login.res.status, html: await login.res.text() };
    } finally {
      await browser.close();
    }
  };

  it('opens after consecutive failures: customers get the unavailable page without Moat reaching the service', async () => {
    service.behaviour = 'error';
    expect((await consentStep()).status).toBe(503);
    expect((await consentStep()).status).toBe(503);
    const before = service.requests.length;
    service.behaviour = 'good';
    const refused = await consentStep();
    expect(refused.status).toBe(503);
    expect(refused.html).toContain('Your accounts cannot be shown right now');
    expect(service.requests.length).toBe(before);
    expect(guarded.logs).toContainEqual(expect.objectContaining({ event: 'consent.accounts_unavailable', reason: 'circuit_open' }));
    const metrics = await scrapeMetrics(guarded);
    expect(metrics).toMatch(/^moat_account_service_circuit_state 2$/m);
    expect(sampleSum(metrics, 'moat_account_service_circuit_refusals_total', { operation: 'list_accounts' })).toBe(1);
  });

  it('closes again once openSeconds have passed and the probe succeeds: customers see their accounts', async () => {
    skewMs += 3601 * 1000;
    const before = service.requests.length;
    const probed = await consentStep();
    expect(probed.status).toBe(200);
    expect(probed.html).toContain('is asking for access');
    expect(service.requests.length).toBeGreaterThan(before);
    expect(guarded.logs).toContainEqual(expect.objectContaining({ event: 'account_service.circuit', circuit: 'closed' }));
    expect(await scrapeMetrics(guarded)).toMatch(/^moat_account_service_circuit_state 0$/m);
    // Closed: the next customer's page asks the service again, and refusals stay where they were.
    const next = await consentStep();
    expect(next.status).toBe(200);
    expect(sampleSum(await scrapeMetrics(guarded), 'moat_account_service_circuit_refusals_total', { operation: 'list_accounts' })).toBe(1);
  });
});

describe('the sandbox reads its demo accounts through the same contract', () => {
  let sandbox: Harness;
  let sandboxTpp: RegisteredTpp;
  beforeAll(async () => {
    sandbox = await startMoat();
    sandboxTpp = await onboardTpp(sandbox);
  });
  afterAll(async () => {
    await sandboxTpp?.close();
    await sandbox?.close();
  });

  it('serves the demo accounts on a loopback mTLS listener and lists them with the account service client', async () => {
    const { tokens } = await authorizationCodeFlow(sandbox, sandboxTpp, { scope: 'openid accounts' });
    const res = await sandboxTpp.fetch(`${sandbox.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(((await res.json()) as { data: { accounts: { accountId: string }[] } }).data.accounts.map((a) => a.accountId).sort()).toEqual(
      sandboxAccountsOf('alice').sort(),
    );
    const metrics = await scrapeMetrics(sandbox);
    expect(sampleSum(metrics, 'moat_account_service_requests_total', { operation: 'list_accounts', outcome: 'ok' })).toBeGreaterThanOrEqual(2);
  });
});

describe('accounts.source: database', () => {
  let direct: Harness;
  let directTpp: RegisteredTpp;
  beforeAll(async () => {
    direct = await startMoat({ config: { accounts: { source: 'database' } } });
    directTpp = await onboardTpp(direct);
  });
  afterAll(async () => {
    await directTpp?.close();
    await direct?.close();
  });

  it('reads the customer_account table directly, with no account service in between', async () => {
    const { tokens } = await authorizationCodeFlow(direct, directTpp, { scope: 'openid accounts' });
    const res = await directTpp.fetch(`${direct.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(((await res.json()) as { data: { accounts: { accountId: string }[] } }).data.accounts.map((a) => a.accountId).sort()).toEqual(
      sandboxAccountsOf('alice').sort(),
    );
    expect(sampleSum(await scrapeMetrics(direct), 'moat_account_service_requests_total')).toBe(0);
  });
});

import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { createAccountServiceMetrics } from '../../src/accounts/account-service-metrics.ts';
import { createHttpAccountDirectory, type AccountServiceClientOptions, type HttpAccountDirectory } from '../../src/accounts/http-account-directory.ts';
import { AccountsUnavailable } from '../../src/customers/account-directory.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { bankAccounts, MALFORMED_ACCOUNT, startAccountService, type TestAccountService } from '../support/account-service.ts';
import { createTestCa } from '../support/pki.ts';

/*
 * Moat's account service client (issue 17 point 2) against a real HTTPS service with mutual TLS:
 * good, slow, failing and malformed answers; retries, the circuit breaker and the interaction cache.
 * The breaker's clock is the test's; the only real waiting is a 250 ms timeout on a held answer.
 */

let service: TestAccountService;
beforeAll(async () => {
  service = await startAccountService({ accounts: bankAccounts() });
});
afterAll(async () => {
  await service.close();
});

interface Client {
  directory: HttpAccountDirectory;
  logs: Record<string, unknown>[];
  registry: Registry;
  clock: { now: number };
  sleeps: number[];
}

const clients: HttpAccountDirectory[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  service.behaviour = 'good';
  service.queue = [];
  service.requests = [];
  service.funds.clear();
});

function client(overrides: Partial<AccountServiceClientOptions> = {}): Client {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const registry = new Registry();
  const clock = { now: 1_000_000 };
  const sleeps: number[] = [];
  const directory = createHttpAccountDirectory({
    url: service.url,
    tls: { certPem: service.moatClient.certPem, keyPem: service.moatClient.keyPem, caPem: service.ca.certPem },
    // Generous: a loaded CI machine can take a few hundred ms for one mTLS exchange, which must not
    // count as the timeout (and retry) the tests below assert on their own terms.
    timeoutMs: 3_000,
    retries: 2,
    retryBackoffMs: 40,
    circuitBreaker: { failureThreshold: 100, openSeconds: 30 },
    cacheSeconds: 600,
    logger: createLogger('debug', sink),
    metrics: createAccountServiceMetrics(registry),
    now: () => clock.now,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...overrides,
  });
  clients.push(directory);
  return { directory, logs, registry, clock, sleeps };
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = (await registry.getSingleMetric(name)!.get()).values;
  return values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((sum, v) => sum + v.value, 0);
}

async function unavailable(promise: Promise<unknown>): Promise<AccountsUnavailable> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof AccountsUnavailable) return err;
    throw err;
  }
  throw new Error('the call succeeded');
}

describe('the account service client (accounts.source: http)', () => {
  it("lists a customer's accounts over mutual TLS, presenting Moat's client certificate", async () => {
    const { directory, registry } = client();
    const accounts = await directory.listForCustomer('cust-alice');
    expect(accounts).toEqual([
      {
        id: 'bank-alice-bills',
        nickname: 'Bills account',
        accountType: 'Personal current account',
        currency: 'GBP',
        schemeName: 'UK.OBIE.SortCodeAccountNumber',
        identification: '20001711112222',
      },
      {
        id: 'bank-alice-holiday',
        nickname: 'Holiday fund',
        accountType: 'Savings account',
        currency: 'GBP',
        schemeName: 'UK.OBIE.SortCodeAccountNumber',
        identification: '20001733334444',
      },
    ]);
    expect(service.requests).toEqual([{ path: '/bank/customers/cust-alice/accounts', clientCn: 'moat' }]);
    expect(await metric(registry, 'moat_account_service_requests_total', { operation: 'list_accounts', outcome: 'ok' })).toBe(1);
  });

  it('answers an empty list for a customer the service does not know, and percent-encodes the id in the path', async () => {
    const { directory } = client();
    expect(await directory.listForCustomer('someone/else?')).toEqual([]);
    expect(service.requests[0]!.path).toBe('/bank/customers/someone%2Felse%3F/accounts');
  });

  it("refuses a service whose certificate does not chain to the configured CA, as the service's failure", async () => {
    const stranger = await createTestCa([{ CN: ['Someone else'] }]);
    const { directory } = client({ tls: { certPem: service.moatClient.certPem, keyPem: service.moatClient.keyPem, caPem: stranger.certPem }, retries: 0 });
    expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('connection_failed');
    expect(service.requests).toHaveLength(0);
  });

  it('retries a 500 with growing backoff and answers when a retry succeeds, counting each attempt and retry', async () => {
    const { directory, registry, sleeps } = client();
    service.queue = ['error', 'error', 'good'];
    expect(await directory.listForCustomer('cust-bob')).toHaveLength(1);
    expect(service.requests).toHaveLength(3);
    expect(await metric(registry, 'moat_account_service_retries_total', { operation: 'list_accounts' })).toBe(2);
    expect(await metric(registry, 'moat_account_service_requests_total', { operation: 'list_accounts', outcome: 'service_error' })).toBe(2);
    expect(await metric(registry, 'moat_account_service_requests_total', { operation: 'list_accounts', outcome: 'ok' })).toBe(1);
    // 40 ms then 80 ms, each with up to half of it as jitter.
    expect(sleeps).toHaveLength(2);
    expect(sleeps[0]).toBeGreaterThanOrEqual(20);
    expect(sleeps[0]).toBeLessThanOrEqual(40);
    expect(sleeps[1]).toBeGreaterThanOrEqual(40);
    expect(sleeps[1]).toBeLessThanOrEqual(80);
  });

  it('gives up after the configured retries with service_error, and logs the failure', async () => {
    const { directory, logs } = client({ retries: 1 });
    service.behaviour = 'error';
    expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('service_error');
    expect(service.requests).toHaveLength(2);
    expect(logs).toContainEqual(
      expect.objectContaining({ event: 'account_service.unavailable', outcome: 'service_error', operation: 'list_accounts', attempt: 2, status: 500 }),
    );
  });

  it('times out a slow answer and retries it, then reports timeout', async () => {
    const { directory, registry } = client({ retries: 1 });
    service.behaviour = 'slow';
    expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('timeout');
    expect(service.requests).toHaveLength(2);
    expect(await metric(registry, 'moat_account_service_requests_total', { outcome: 'timeout' })).toBe(2);
    service.releaseSlow();
  });

  it('refuses a malformed answer field by field in one log line, without retrying and without logging the values', async () => {
    const { directory, logs, registry } = client();
    service.behaviour = 'malformed';
    const err = await unavailable(directory.listForCustomer('cust-alice'));
    expect(err.reason).toBe('malformed_answer');
    expect(service.requests).toHaveLength(1);
    const line = logs.find((l) => l.event === 'account_service.malformed_answer')!;
    expect(line).toMatchObject({ outcome: 'malformed_answer', operation: 'list_accounts' });
    expect(line.fields).toEqual([
      expect.stringMatching(/^accounts\[0\]\.currency: /),
      expect.stringMatching(/^accounts\[0\]\.identification: .*expected string, received number/),
    ]);
    expect(line.msg).toContain('accounts[0].currency');
    expect(JSON.stringify(line)).not.toContain(String(MALFORMED_ACCOUNT.identification));
    expect(JSON.stringify(line)).not.toContain('pounds');
    expect(await metric(registry, 'moat_account_service_requests_total', { outcome: 'malformed_answer' })).toBe(1);
  });

  it('does not retry a 404 on the account list (the contract answers an unknown customer with an empty list)', async () => {
    const { directory } = client();
    service.behaviour = 'not_found';
    expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('unexpected_status');
    expect(service.requests).toHaveLength(1);
  });

  it('asks whether an account can pay an amount, and takes a 404 as cannot', async () => {
    const { directory } = client();
    service.funds.set('bank-alice-bills', 100);
    expect(await directory.canPay('cust-alice', 'bank-alice-bills', { amount: '42.50', currency: 'GBP' })).toBe(true);
    expect(await directory.canPay('cust-alice', 'bank-alice-bills', { amount: '100.01', currency: 'GBP' })).toBe(false);
    expect(await directory.canPay('cust-alice', 'bank-bob-main', { amount: '1.00', currency: 'GBP' })).toBe(false);
    expect(service.requests.map((r) => r.path)).toEqual([
      '/bank/customers/cust-alice/accounts/bank-alice-bills/can-pay?amount=42.50&currency=GBP',
      '/bank/customers/cust-alice/accounts/bank-alice-bills/can-pay?amount=100.01&currency=GBP',
      '/bank/customers/cust-alice/accounts/bank-bob-main/can-pay?amount=1.00&currency=GBP',
    ]);
  });

  it('refuses a can-pay answer that is not a boolean', async () => {
    const { directory, logs } = client();
    service.behaviour = 'malformed';
    expect((await unavailable(directory.canPay('cust-alice', 'bank-alice-bills', { amount: '1', currency: 'GBP' }))).reason).toBe('malformed_answer');
    expect(logs.find((l) => l.event === 'account_service.malformed_answer')?.fields).toEqual([expect.stringMatching(/^canPay: .*expected boolean/)]);
  });

  it('asks once per interaction: the consent page and the form posted from it see the same answer', async () => {
    const { directory, registry, clock } = client();
    await directory.listForCustomer('cust-alice', { interactionId: 'uid-1' });
    await directory.listForCustomer('cust-alice', { interactionId: 'uid-1' });
    await directory.canPay('cust-alice', 'bank-alice-bills', { amount: '5', currency: 'GBP' }, { interactionId: 'uid-1' });
    await directory.canPay('cust-alice', 'bank-alice-bills', { amount: '5', currency: 'GBP' }, { interactionId: 'uid-1' });
    expect(service.requests).toHaveLength(2);
    await directory.listForCustomer('cust-alice', { interactionId: 'uid-2' });
    await directory.listForCustomer('cust-alice');
    expect(service.requests).toHaveLength(4);
    expect(await metric(registry, 'moat_account_service_cache_hits_total')).toBe(2);
    // Past the interaction's lifetime the answer is not reused.
    clock.now += 601_000;
    await directory.listForCustomer('cust-alice', { interactionId: 'uid-1' });
    expect(service.requests).toHaveLength(5);
  });

  it('does not keep a failure for the interaction: trying again asks the service again', async () => {
    const { directory } = client({ retries: 0 });
    service.queue = ['error'];
    await unavailable(directory.listForCustomer('cust-alice', { interactionId: 'uid-3' }));
    expect(await directory.listForCustomer('cust-alice', { interactionId: 'uid-3' })).toHaveLength(2);
    expect(service.requests).toHaveLength(2);
  });
});

describe('the account service circuit breaker', () => {
  it('opens after the configured consecutive failures, refusing calls without reaching the service', async () => {
    const { directory, registry, logs } = client({ retries: 0, circuitBreaker: { failureThreshold: 3, openSeconds: 30 } });
    service.behaviour = 'error';
    for (let i = 0; i < 3; i += 1) expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('service_error');
    expect(await metric(registry, 'moat_account_service_circuit_state')).toBe(2);
    expect(logs).toContainEqual(expect.objectContaining({ event: 'account_service.circuit', circuit: 'open' }));
    service.behaviour = 'good';
    expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('circuit_open');
    expect((await unavailable(directory.canPay('cust-alice', 'bank-alice-bills', { amount: '1', currency: 'GBP' }))).reason).toBe('circuit_open');
    expect(service.requests).toHaveLength(3);
    expect(await metric(registry, 'moat_account_service_circuit_refusals_total')).toBe(2);
  });

  it('stops retrying once the circuit opens', async () => {
    const { directory } = client({ retries: 5, circuitBreaker: { failureThreshold: 2, openSeconds: 30 } });
    service.behaviour = 'error';
    expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('circuit_open');
    expect(service.requests).toHaveLength(2);
  });

  it('lets one probe through after openSeconds: a failed probe opens it again, a good one closes it', async () => {
    const { directory, registry, clock, logs } = client({ retries: 0, circuitBreaker: { failureThreshold: 2, openSeconds: 30 } });
    service.behaviour = 'error';
    await unavailable(directory.listForCustomer('cust-alice'));
    await unavailable(directory.listForCustomer('cust-alice'));
    clock.now += 29_999;
    expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('circuit_open');
    expect(service.requests).toHaveLength(2);

    // Half-open: one probe reaches the service, fails, and the circuit opens for another 30 s.
    clock.now += 1;
    expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('service_error');
    expect(service.requests).toHaveLength(3);
    expect((await unavailable(directory.listForCustomer('cust-alice'))).reason).toBe('circuit_open');
    expect(await metric(registry, 'moat_account_service_circuit_state')).toBe(2);

    // The service is back: the next probe succeeds and the circuit closes.
    service.behaviour = 'good';
    clock.now += 30_000;
    expect(await directory.listForCustomer('cust-alice')).toHaveLength(2);
    expect(await metric(registry, 'moat_account_service_circuit_state')).toBe(0);
    expect(await directory.listForCustomer('cust-bob')).toHaveLength(1);
    expect(service.requests).toHaveLength(5);
    expect(logs.filter((l) => l.event === 'account_service.circuit').map((l) => l.circuit)).toEqual(['open', 'half_open', 'open', 'half_open', 'closed']);
  });

  it('lets only one probe through while half-open', async () => {
    const { directory, clock } = client({ retries: 0, circuitBreaker: { failureThreshold: 1, openSeconds: 5 } });
    service.queue = ['error'];
    await unavailable(directory.listForCustomer('cust-alice'));
    clock.now += 5000;
    service.behaviour = 'slow';
    const probe = directory.listForCustomer('cust-alice');
    const other = unavailable(directory.listForCustomer('cust-bob'));
    expect((await other).reason).toBe('circuit_open');
    service.behaviour = 'good';
    service.releaseSlow();
    expect(await probe).toHaveLength(2);
    expect(await directory.listForCustomer('cust-bob')).toHaveLength(1);
  });
});

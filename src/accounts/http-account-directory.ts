import { Agent, request } from 'node:https';
import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import {
  AccountsUnavailable,
  type AccountDirectory,
  type AccountLookup,
  type AccountsUnavailableReason,
  type CustomerAccount,
} from '../customers/account-directory.ts';
import type { Logger } from '../observability/logger.ts';
import { ACCOUNT_SERVICE_PATHS, accountListSchema, canPaySchema, contractPath, contractViolations, type ContractAccount } from './account-service-contract.ts';
import type { AccountServiceMetrics, AccountServiceOperation, AccountServiceOutcome } from './account-service-metrics.ts';
import { createCircuitBreaker, type CircuitState } from './circuit-breaker.ts';

/*
 * The customer's accounts from the bank's account service (docs/account-service.openapi.json):
 * over mutual TLS with Moat's client certificate, each request bounded by a timeout, the
 * contract's idempotent GETs retried with backoff after a timeout, a connection failure or a 5xx,
 * a circuit breaker in front, and each answer kept for the interaction that asked for it, so the
 * consent page and the form posted from it see the same accounts and the service is asked once.
 */

export interface AccountServiceClientOptions {
  /** The service's base URL; the contract's paths are appended to it. */
  url: string;
  /** Moat's client certificate and key, and the CA the service's certificate must chain to (PEM). */
  tls: { certPem: string; keyPem: string; caPem?: string };
  timeoutMs: number;
  /** Further attempts after a failed one (idempotent reads only). */
  retries: number;
  /** The first retry's delay; each further one doubles it. */
  retryBackoffMs: number;
  circuitBreaker: { failureThreshold: number; openSeconds: number };
  /** How long an answer is kept for the interaction that asked: the interaction's lifetime. */
  cacheSeconds: number;
  logger: Logger;
  metrics: AccountServiceMetrics;
  /** The clock of the circuit breaker and the cache, injected so tests move time instead of waiting. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface HttpAccountDirectory extends AccountDirectory {
  /** One uncached list request for a customer the service does not know, as `moat config validate --connect` makes it. */
  check(): Promise<void>;
  /**
   * Presents a new client certificate (renewed by ACME) from the next connection on. Requests in
   * flight finish on their connections, which then close instead of being kept alive.
   */
  setClientCertificate(client: { certPem: string; keyPem: string }): void;
  close(): void;
}

/** A customer id no bank has: its account list is empty by the contract. */
export const CONNECTIVITY_CHECK_CUSTOMER = 'moat-connectivity-check';

/** More than any account list: a bigger answer is refused rather than read into memory. */
const MAX_ANSWER_BYTES = 1024 * 1024;

/** Answers kept at most, across interactions; past it the oldest go first. */
const MAX_CACHED_ANSWERS = 10_000;

type Attempt = { outcome: 'ok'; body: unknown } | { outcome: Exclude<AccountServiceOutcome, 'ok'>; status?: number; fields?: string[]; cause?: unknown };

/** What the customer cannot recover from by waiting is not retried: the same request gets the same answer. */
const RETRIED: ReadonlySet<AccountServiceOutcome> = new Set(['timeout', 'connection_failed', 'service_error']);

const REASON: Record<Exclude<AccountServiceOutcome, 'ok' | 'not_found'>, AccountsUnavailableReason> = {
  timeout: 'timeout',
  connection_failed: 'connection_failed',
  service_error: 'service_error',
  unexpected_status: 'unexpected_status',
  malformed_answer: 'malformed_answer',
};

class AnswerTooLarge extends Error {}

export function createHttpAccountDirectory(options: AccountServiceClientOptions): HttpAccountDirectory {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((done) => setTimeout(done, ms)));
  const base = new URL(options.url);
  const agentFor = (client: { certPem: string; keyPem: string }) =>
    new Agent({
      keepAlive: true,
      cert: client.certPem,
      key: client.keyPem,
      ...(options.tls.caPem === undefined ? {} : { ca: options.tls.caPem }),
    });
  let agent = agentFor(options.tls);
  const { logger, metrics } = options;
  const breaker = createCircuitBreaker({
    failureThreshold: options.circuitBreaker.failureThreshold,
    openMs: options.circuitBreaker.openSeconds * 1000,
    now,
    onStateChange: (state: CircuitState) => {
      metrics.circuit(state);
      const log = state === 'open' ? logger.warn.bind(logger) : logger.info.bind(logger);
      log({ event: 'account_service.circuit', circuit: state }, `account service circuit ${state.replace('_', '-')}`);
    },
  });

  const urlFor = (path: string, query?: Record<string, string>): URL => {
    const url = new URL(base);
    url.pathname = `${base.pathname.replace(/\/$/, '')}${path}`;
    url.search = query === undefined ? '' : new URLSearchParams(query).toString();
    return url;
  };

  const send = (url: URL): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const req = request(url, { agent, method: 'GET', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(options.timeoutMs) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            res.destroy(new AnswerTooLarge(`the answer is over ${MAX_ANSWER_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });

  const attemptOnce = async (url: URL, schema: z.ZodType, notFoundIsAnswer: boolean): Promise<Attempt> => {
    let answer: { status: number; text: string };
    try {
      answer = await send(url);
    } catch (err) {
      if (err instanceof AnswerTooLarge) return { outcome: 'malformed_answer', fields: [`(the answer): ${err.message}`], cause: err };
      const name = (err as Error).name;
      return { outcome: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'connection_failed', cause: err };
    }
    if (answer.status === 404 && notFoundIsAnswer) return { outcome: 'not_found', status: 404 };
    if (answer.status >= 500) return { outcome: 'service_error', status: answer.status };
    if (answer.status !== 200) return { outcome: 'unexpected_status', status: answer.status };
    let body: unknown;
    try {
      body = JSON.parse(answer.text);
    } catch {
      return { outcome: 'malformed_answer', status: 200, fields: ['(the answer): not JSON'] };
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) return { outcome: 'malformed_answer', status: 200, fields: contractViolations(parsed.error) };
    return { outcome: 'ok', body: parsed.data };
  };

  /** One call of the contract: attempts, retries and the breaker. Resolves with the parsed answer, or undefined for a 404 the operation allows. */
  const call = async (operation: AccountServiceOperation, url: URL, schema: z.ZodType, notFoundIsAnswer = false): Promise<unknown> => {
    // Both of the contract's operations are GETs: safe and idempotent (RFC 9110 §9.2), so repeating one is harmless.
    for (let attempt = 1; ; attempt += 1) {
      if (!breaker.admit()) {
        metrics.refused(operation);
        throw new AccountsUnavailable('circuit_open', 'the account service circuit is open after repeated failures');
      }
      const started = performance.now();
      const result = await attemptOnce(url, schema, notFoundIsAnswer);
      metrics.request(operation, result.outcome, (performance.now() - started) / 1000);
      if (result.outcome === 'ok' || result.outcome === 'not_found') {
        breaker.succeeded();
        return result.outcome === 'ok' ? result.body : undefined;
      }
      breaker.failed();
      const reason = REASON[result.outcome];
      if (result.outcome === 'malformed_answer') {
        const fields = result.fields ?? [];
        logger.warn(
          { event: 'account_service.malformed_answer', outcome: reason, operation, fields },
          `account service answer refused (${operation}): ${fields.join('; ')}`,
        );
        throw new AccountsUnavailable(reason, `the account service's answer breaks the contract: ${fields.join('; ')}`);
      }
      if (RETRIED.has(result.outcome) && attempt <= options.retries) {
        metrics.retry(operation);
        logger.info(
          { event: 'account_service.retry', outcome: reason, operation, attempt, ...(result.status === undefined ? {} : { status: result.status }) },
          'account service request retried',
        );
        await sleep(backoff(options.retryBackoffMs, attempt));
        continue;
      }
      logger.warn(
        {
          event: 'account_service.unavailable',
          outcome: reason,
          operation,
          attempt,
          ...(result.status === undefined ? {} : { status: result.status }),
          ...(result.cause === undefined ? {} : { err: result.cause }),
        },
        `account service ${operation} failed: ${reason}`,
      );
      throw new AccountsUnavailable(reason, `the account service failed (${reason}${result.status === undefined ? '' : `, HTTP ${result.status}`})`, {
        cause: result.cause,
      });
    }
  };

  const cache = new Map<string, { expiresAt: number; answer: Promise<unknown> }>();
  const cached = <T>(operation: AccountServiceOperation, key: string[], lookup: AccountLookup | undefined, load: () => Promise<T>): Promise<T> => {
    if (lookup?.interactionId === undefined) return load();
    const id = JSON.stringify([lookup.interactionId, operation, ...key]);
    const entry = cache.get(id);
    if (entry !== undefined && entry.expiresAt > now()) {
      metrics.cacheHit(operation);
      return entry.answer as Promise<T>;
    }
    const answer = load();
    const stored = { expiresAt: now() + options.cacheSeconds * 1000, answer };
    cache.delete(id);
    cache.set(id, stored);
    // A failure is not kept: the customer's "try again" asks the service again.
    answer.catch(() => {
      if (cache.get(id) === stored) cache.delete(id);
    });
    for (const [old, value] of cache) {
      if (cache.size <= MAX_CACHED_ANSWERS && value.expiresAt > now()) break;
      cache.delete(old);
    }
    return answer;
  };

  const listForCustomer = async (customerId: string): Promise<CustomerAccount[]> => {
    const body = (await call('list_accounts', urlFor(contractPath(ACCOUNT_SERVICE_PATHS.accounts, { customerId })), accountListSchema)) as z.infer<
      typeof accountListSchema
    >;
    return body.accounts.map(customerAccount);
  };

  return {
    listForCustomer: (customerId, lookup) => cached('list_accounts', [customerId], lookup, () => listForCustomer(customerId)),
    canPay: (customerId, accountId, amount, lookup) =>
      cached('can_pay', [customerId, accountId, amount.amount, amount.currency], lookup, async () => {
        const url = urlFor(contractPath(ACCOUNT_SERVICE_PATHS.canPay, { customerId, accountId }), { amount: amount.amount, currency: amount.currency });
        const body = (await call('can_pay', url, canPaySchema, true)) as z.infer<typeof canPaySchema> | undefined;
        return body?.canPay === true;
      }),
    async check() {
      await listForCustomer(CONNECTIVITY_CHECK_CUSTOMER);
    },
    setClientCertificate(client) {
      const retired = agent;
      agent = agentFor(client);
      // node's Agent reads keepAlive when a request ends: a busy socket is closed as it frees.
      (retired as Agent & { keepAlive: boolean }).keepAlive = false;
      for (const sockets of Object.values(retired.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
    },
    close: () => agent.destroy(),
  };
}

function customerAccount(a: ContractAccount): CustomerAccount {
  return { id: a.id, nickname: a.nickname, accountType: a.type, currency: a.currency, schemeName: a.schemeName, identification: a.identification };
}

/** Exponential backoff with jitter (half fixed, half random), so retrying instances do not move in step. */
function backoff(baseMs: number, attempt: number): number {
  const ms = baseMs * 2 ** (attempt - 1);
  return ms / 2 + Math.random() * (ms / 2);
}

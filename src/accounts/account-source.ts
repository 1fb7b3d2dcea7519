import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Registry } from 'prom-client';
import type { AccountServiceConfig, AccountSource } from '../config/accounts-schema.ts';
import type { MoatConfig } from '../config/schema.ts';
import type { AccountDirectory } from '../customers/account-directory.ts';
import type { Logger } from '../observability/logger.ts';
import { createAccountServiceMetrics } from './account-service-metrics.ts';
import { createHttpAccountDirectory, type AccountServiceClientOptions, type HttpAccountDirectory } from './http-account-directory.ts';

/*
 * The AccountDirectory `accounts.source` asks for, built once at start-up: the customer_account
 * table, the bank's account service, or the sandbox's own service on loopback (started by the
 * caller, which owns the sandbox) read through the same client.
 */

/** A loopback service speaking the contract, with the client credentials it accepts. */
export interface LoopbackAccountService {
  url: string;
  tls: { certPem: string; keyPem: string; caPem: string };
  close(): Promise<void>;
}

export interface AccountSourceHandle {
  source: AccountSource;
  directory: AccountDirectory;
  /** The bank's account service client (`http`), whose client certificate ACME renews. */
  accountService?: HttpAccountDirectory;
  close(): Promise<void>;
}

/** The client settings the sandbox's own service is called with: the defaults of accounts.http. */
const SANDBOX_CLIENT = { timeoutMs: 3000, retries: 2, retryBackoffMs: 100, circuitBreaker: { failureThreshold: 5, openSeconds: 30 } } as const;

export function accountSourceOf(config: MoatConfig): AccountSource {
  return config.accounts.source ?? (config.mode === 'sandbox' ? 'sandbox' : 'database');
}

/** Reads a PEM file named by a configuration key; a missing file is reported by that key. */
function readPem(key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}

/** The client for a configured account service (`accounts.http`). */
export function createConfiguredAccountService(
  http: AccountServiceConfig,
  deps: { logger: Logger; registry: Registry; cacheSeconds: number; now?: () => number },
): HttpAccountDirectory {
  const tls = {
    certPem: readPem('accounts.http.clientCertFile', http.clientCertFile),
    keyPem: readPem('accounts.http.clientKeyFile', http.clientKeyFile),
    ...(http.caFile === undefined ? {} : { caPem: readPem('accounts.http.caFile', http.caFile) }),
  };
  // At start-up, not at the first customer's consent: a key that is not the certificate's, or a
  // file that is not PEM, is a configuration error.
  try {
    createSecureContext({ cert: tls.certPem, key: tls.keyPem, ...(tls.caPem === undefined ? {} : { ca: tls.caPem }) });
  } catch (err) {
    throw new Error(
      `accounts.http.clientCertFile, accounts.http.clientKeyFile, accounts.http.caFile: not a usable certificate, key and CA (${(err as Error).message})`,
      { cause: err },
    );
  }
  return createHttpAccountDirectory({
    url: http.url,
    tls,
    timeoutMs: http.timeoutMs,
    retries: http.retries,
    retryBackoffMs: http.retryBackoffMs,
    circuitBreaker: http.circuitBreaker,
    cacheSeconds: deps.cacheSeconds,
    logger: deps.logger,
    metrics: createAccountServiceMetrics(deps.registry),
    ...(deps.now === undefined ? {} : { now: deps.now }),
  });
}

export async function createAccountSource(deps: {
  config: MoatConfig;
  /** The accounts in the database (customer_account): the source itself, or what the sandbox's service serves. */
  database: AccountDirectory;
  logger: Logger;
  registry: Registry;
  /** Starts the sandbox's service over the demo accounts (src/sandbox). */
  startSandboxService: (demoAccounts: AccountDirectory) => Promise<LoopbackAccountService>;
  /** The server's clock (epoch ms), for the circuit breaker and the cache: tests move it instead of sleeping. */
  now?: () => number;
}): Promise<AccountSourceHandle> {
  const { config, logger, registry } = deps;
  const source = accountSourceOf(config);
  const { database } = deps;
  const cacheSeconds = config.tokens.interactionTtl;
  if (source === 'database') return { source, directory: database, close: async () => undefined };
  if (source === 'http') {
    const client = createConfiguredAccountService(config.accounts.http!, {
      logger,
      registry,
      cacheSeconds,
      ...(deps.now === undefined ? {} : { now: deps.now }),
    });
    logger.info({ event: 'accounts.source', source }, "accounts from the bank's account service");
    return { source, directory: client, accountService: client, close: async () => client.close() };
  }
  const service = await deps.startSandboxService(database);
  const options: AccountServiceClientOptions = {
    url: service.url,
    tls: service.tls,
    ...SANDBOX_CLIENT,
    cacheSeconds,
    logger,
    metrics: createAccountServiceMetrics(registry),
  };
  const client = createHttpAccountDirectory(options);
  return {
    source,
    directory: client,
    close: async () => {
      client.close();
      await service.close();
    },
  };
}

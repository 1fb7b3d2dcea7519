import { z } from 'zod';

/*
 * `accounts`: where the customer's accounts come from (issue 17 point 2). The bank's account
 * service speaks the contract in docs/account-service.openapi.json.
 */

export const ACCOUNT_SOURCES = ['database', 'http', 'sandbox'] as const;
export type AccountSource = (typeof ACCOUNT_SOURCES)[number];

const accountServiceSchema = z.strictObject({
  /** The service's base URL; the contract's paths are appended to it. */
  url: z.url({ protocol: /^https$/, error: 'expected an https:// URL (the account service is called over mutual TLS)' }),
  /** Moat's client certificate and its key (PEM), presented to the service. */
  clientCertFile: z.string().min(1),
  clientKeyFile: z.string().min(1),
  /** The CA (PEM) the service's certificate must chain to; unset: the system's CAs. */
  caFile: z.string().min(1).optional(),
  /** Per request, connection to last byte. The customer is waiting on the consent page. */
  timeoutMs: z.number().int().min(100).max(30_000).default(3000),
  /** Further attempts after a timeout, a connection failure or a 5xx (the contract's GETs are idempotent). */
  retries: z.number().int().min(0).max(5).default(2),
  /** Delay before the first retry, doubled for each further one (with jitter). */
  retryBackoffMs: z.number().int().min(0).max(10_000).default(100),
  circuitBreaker: z
    .strictObject({
      /** Consecutive failed requests that open the circuit: calls then fail at once. */
      failureThreshold: z.number().int().min(1).max(1000).default(5),
      /** How long it stays open before one request probes the service again, in seconds. */
      openSeconds: z.number().int().min(1).max(3600).default(30),
    })
    .prefault({}),
});

export const accountsSchema = z
  .strictObject({
    /**
     * `database`: the customer_account table. `http`: the bank's account service (`accounts.http`).
     * `sandbox`: the demo accounts served by the contract on a loopback mTLS port, read through the
     * same client as `http` (sandbox mode only). Unset: `sandbox` in sandbox mode, `database` in production.
     */
    source: z.enum(ACCOUNT_SOURCES).optional(),
    http: accountServiceSchema.optional(),
  })
  .superRefine((accounts, ctx) => {
    if (accounts.source === 'http' && accounts.http === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['http'],
        message: "required when accounts.source is http: the url, clientCertFile and clientKeyFile of the bank's account service",
      });
    }
    if (accounts.source !== 'http' && accounts.http !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['source'], message: 'set it to http to use accounts.http (or remove accounts.http)' });
    }
  })
  .prefault({});

export type AccountsConfig = z.infer<typeof accountsSchema>;
export type AccountServiceConfig = NonNullable<AccountsConfig['http']>;

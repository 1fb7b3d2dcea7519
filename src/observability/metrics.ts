import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { outcomeOf } from '../kernel/outcome.ts';
import { StorageUnavailableError } from '../kernel/storage-unavailable.ts';
import { TOKEN_REQUEST_UNDONE, type TokenRequestUndone } from './provider-events.ts';

/*
 * Prometheus metrics (prom-client), served on the admin listener, never on the public one. Label
 * values come from closed sets (endpoint names, outcome codes, token kinds), so a hostile client
 * cannot blow up the series count with its own strings.
 */

export interface Metrics {
  registry: Registry;
  /** Counts and times every request by endpoint and outcome. Runs at the edge. */
  middleware: Middleware;
  /** Counts storage calls failed by an unavailable backend; given to createStorage, so metrics come first. */
  storageErrors: (backend: 'postgres' | 'redis', operation: string) => void;
  /** The gauges read from storage (consents, certificates, readiness), once storage is open. */
  attachSources(sources: MetricSources): void;
  /** Token issuance and revocation, and the PAR → code → token funnel, from oidc-provider events. */
  attachProvider(provider: Provider): void;
  /**
   * Failed sign-ins at the bank's OpenID Provider by kind (customers.source: oidc); the kinds, a
   * closed set, are federation's FederationFailureKind, declared at zero by server.ts.
   */
  upstreamIdpFailures: Counter<'kind'>;
  /** The gateway check's answers by outcome (`allowed`, an RFC 6750 / RFC 9449 error code, `gateway_unauthenticated`). */
  gatewayChecks: Counter<'outcome'>;
  /** Reads of the in-process caches (src/caching/) by cache (its invalidation topic) and result (`hit`, `miss`). */
  cacheReads: Counter<'cache' | 'result'>;
}

export interface MetricSources {
  activeConsents(): Promise<number>;
  certificates(): Promise<{ thumbprint: string; orgId: string; notAfter: Date; status: string }[]>;
  /** The /readyz check: resolves when Moat can serve. */
  ready(): Promise<void>;
}

const ENDPOINTS: [RegExp, string][] = [
  [/^\/par\/?$/i, 'par'],
  [/^\/authorize(\/|$)/i, 'authorize'],
  [/^\/token\/?$/i, 'token'],
  [/^\/introspect\/?$/i, 'introspect'],
  [/^\/revoke\/?$/i, 'revoke'],
  [/^\/register(\/|$)/i, 'register'],
  [/^\/userinfo\/?$/i, 'userinfo'],
  [/^\/jwks\/?$/i, 'jwks'],
  [/^\/\.well-known\//i, 'discovery'],
  [/^\/interaction\//i, 'interaction'],
  [/^\/account(\/|$)/i, 'dashboard'],
  [/^\/open-banking\//i, 'consent_api'],
  [/^\/sandbox-api\//i, 'sandbox_api'],
  [/^\/sandbox\/pki\//i, 'sandbox_pki'],
  [/^\/federation\//i, 'federation'],
  [/^\/(healthz|readyz)$/i, 'health'],
  [/^\/assets\//i, 'assets'],
];
/** Outcome labels: OAuth error codes and Moat's own classes; anything else is folded into "other". */
const OUTCOME = /^[a-z][a-z0-9_]{1,40}$/;

export function endpointOf(path: string): string {
  return ENDPOINTS.find(([pattern]) => pattern.test(path))?.[1] ?? 'other';
}

/**
 * Runs a gauge's read from storage so that a scrape during an outage still answers (the gauge keeps
 * its last value) instead of failing whole: the outage itself shows on moat_storage_errors_total.
 */
export async function unlessStorageIsDown(read: () => Promise<void>): Promise<void> {
  try {
    await read();
  } catch (err) {
    if (!(err instanceof StorageUnavailableError)) throw err;
  }
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'moat_process_' });
  const requests = new Counter({
    name: 'moat_http_requests_total',
    help: 'Requests by endpoint, status class and outcome',
    labelNames: ['endpoint', 'status_class', 'outcome'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'moat_http_request_duration_seconds',
    help: 'Request latency by endpoint',
    labelNames: ['endpoint'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'moat_tokens_issued_total',
    help: 'Tokens issued by kind and sender constraint',
    labelNames: ['kind', 'binding'],
    registers: [registry],
  });
  const revocations = new Counter({ name: 'moat_grants_revoked_total', help: 'Grants revoked (with every token of theirs)', registers: [registry] });
  const funnel = new Counter({
    name: 'moat_funnel_total',
    help: 'The authorization funnel: PAR accepted, code issued, code redeemed',
    labelNames: ['step'],
    registers: [registry],
  });
  const withdrawn = new Counter({
    name: 'moat_tokens_withdrawn_total',
    help: 'Tokens issued for a token request that then failed, destroyed before anyone received them, by kind and sender constraint',
    labelNames: ['kind', 'binding'],
    registers: [registry],
  });
  const givenBack = new Counter({
    name: 'moat_codes_given_back_total',
    help: 'Authorization codes given back, redeemable again, after their token request failed past spending them',
    registers: [registry],
  });
  // Counters are summed across cluster workers (prom-client's default), so this one is the cluster's.
  const storageErrors = new Counter({
    name: 'moat_storage_errors_total',
    help: 'Storage calls failed by an unavailable backend (each a 503 or a lost connection), by backend and operation',
    labelNames: ['backend', 'operation'],
    registers: [registry],
  });

  const upstreamIdpFailures = new Counter({
    name: 'moat_upstream_idp_failures_total',
    help: "Sign-ins at the bank's OpenID Provider that failed, by kind (unreachable, timeout, error_response, wrong_issuer, …)",
    labelNames: ['kind'],
    registers: [registry],
  });

  const gatewayChecks = new Counter({
    name: 'moat_gateway_checks_total',
    help: 'Answers of the gateway check (src/gateway-check/) by outcome: allowed, or why refused',
    labelNames: ['outcome'],
    registers: [registry],
  });

  const cacheReads = new Counter({
    name: 'moat_cache_reads_total',
    help: 'Reads of the in-process caches by cache and result (hit: answered from memory; miss: read from storage)',
    labelNames: ['cache', 'result'],
    registers: [registry],
  });

  return {
    registry,
    upstreamIdpFailures,
    gatewayChecks,
    cacheReads,
    storageErrors: (backend, operation) => storageErrors.inc({ backend, operation }),
    attachSources(sources) {
      // Gauges read from the database say the same in every worker: a cluster reports one (max), not the sum.
      new Gauge({
        name: 'moat_consents_active',
        help: 'Authorised consents',
        registers: [registry],
        aggregator: 'max',
        collect() {
          return unlessStorageIsDown(async () => this.set(await sources.activeConsents()));
        },
      });
      new Gauge({
        name: 'moat_certificate_days_to_expiry',
        help: 'Days until each active TPP certificate expires',
        labelNames: ['thumbprint', 'org_id'],
        registers: [registry],
        aggregator: 'max',
        collect() {
          return unlessStorageIsDown(async () => {
            const certificates = await sources.certificates();
            this.reset();
            for (const c of certificates) {
              if (c.status === 'active') this.set({ thumbprint: c.thumbprint, org_id: c.orgId }, Math.floor((c.notAfter.getTime() - Date.now()) / 86_400_000));
            }
          });
        },
      });
      new Gauge({
        name: 'moat_certificates',
        help: 'TPP certificates by status',
        labelNames: ['status'],
        registers: [registry],
        aggregator: 'max',
        collect() {
          return unlessStorageIsDown(async () => {
            const counts = new Map<string, number>();
            for (const c of await sources.certificates()) counts.set(c.status, (counts.get(c.status) ?? 0) + 1);
            this.reset();
            for (const [status, n] of counts) this.set({ status }, n);
          });
        },
      });
      // A cluster is ready only if every worker is (min).
      new Gauge({
        name: 'moat_ready',
        help: '1 when Moat is ready to serve (what GET /readyz answers: storage reachable, no migration pending), else 0',
        registers: [registry],
        aggregator: 'min',
        async collect() {
          this.set(
            await sources.ready().then(
              () => 1,
              () => 0,
            ),
          );
        },
      });
    },
    middleware: async (ctx, next) => {
      const stop = duration.startTimer({ endpoint: endpointOf(ctx.path) });
      try {
        await next();
      } finally {
        stop();
        const outcome = outcomeOf(ctx);
        requests.inc({ endpoint: endpointOf(ctx.path), status_class: `${Math.floor(ctx.status / 100)}xx`, outcome: OUTCOME.test(outcome) ? outcome : 'other' });
      }
    },
    attachProvider(provider) {
      const emitter: NodeJS.EventEmitter = provider;
      const labels = (token: { kind?: string; 'x5t#S256'?: string; jkt?: string }) => ({
        kind: token.kind ?? 'unknown',
        binding: token['x5t#S256'] !== undefined ? 'mtls' : token.jkt !== undefined ? 'dpop' : 'none',
      });
      for (const event of ['access_token.saved', 'access_token.issued', 'client_credentials.saved', 'client_credentials.issued', 'refresh_token.saved']) {
        emitter.on(event, (token: { kind?: string }) => tokens.inc(labels(token)));
      }
      emitter.on('grant.revoked', () => revocations.inc());
      emitter.on('pushed_authorization_request.success', () => funnel.inc({ step: 'par' }));
      // Counted where the client gets the code and where it gets the tokens for it — not on
      // authorization_code.saved and .consumed, which a code given back after a failed token
      // request (TOKEN_REQUEST_UNDONE) is told again.
      emitter.on('authorization.success', () => funnel.inc({ step: 'code_issued' }));
      emitter.on('grant.success', (ctx: { oidc?: { params?: { grant_type?: unknown } } }) => {
        if (ctx.oidc?.params?.grant_type === 'authorization_code') funnel.inc({ step: 'code_redeemed' });
      });
      emitter.on(TOKEN_REQUEST_UNDONE, (_ctx: unknown, undone: TokenRequestUndone) => {
        for (const token of undone.withdrawn) withdrawn.inc(labels(token));
        if (undone.codeGivenBack) givenBack.inc();
      });
    },
  };
}

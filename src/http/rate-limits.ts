import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Middleware } from 'koa';
import type { MoatConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { addressBucket } from '../tls/trusted-proxies.ts';
import type { RateCounter, RateCounterStore } from '../throttle/rate-counter.ts';
import { DomainError } from '../kernel/domain-error.ts';
import { oauthErrorResponse, writeErrorResponse } from '../kernel/error-responses.ts';

/*
 * Rate limits on the endpoints a TPP (or someone pretending to be one) can hammer: PAR, token,
 * registration and CIBA's backchannel authentication (each request can reach a customer's phone), per client and per source address. The client is its certificate (the transport
 * certificate is the TPP's identity on these endpoints, and cannot be claimed by anyone else); the
 * address (an IPv6 client's whole /64: addressBucket) catches the unauthenticated. The counters live
 * in Redis when there is one, shared by every instance (src/storage/redis/redis-rate-counter-store.ts,
 * per-instance memory during a Redis outage), in process otherwise.
 */

const ENDPOINTS = { '/par': 'par', '/token': 'token', '/register': 'registration', '/backchannel': 'backchannel' } as const;
type Endpoint = (typeof ENDPOINTS)[keyof typeof ENDPOINTS];
type Scope = 'address' | 'client';

export function createRateLimitMiddleware(deps: {
  limits: MoatConfig['rateLimits'];
  counters: RateCounterStore;
  keyPrefix: string;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  logger: Logger;
}): Middleware {
  const limitOf = (endpoint: Endpoint, scope: Scope) => (scope === 'client' ? deps.limits[endpoint].perClient : deps.limits[endpoint].perAddress);
  // Hashed: an address or a thumbprint is not kept in Redis as it is.
  const counter = (endpoint: Endpoint, scope: Scope, who: string): RateCounter => ({
    key: `${deps.keyPrefix}rate:${endpoint}:${scope}:${createHash('sha256').update(who).digest('base64url')}`,
    windowSeconds: limitOf(endpoint, scope).perSeconds,
  });

  return async (ctx, next) => {
    // The same matching as oidc-provider's router: case-insensitive, trailing slash allowed.
    const path = ctx.path.toLowerCase().replace(/\/+$/, '');
    const endpoint = ctx.method === 'POST' ? ENDPOINTS[path as keyof typeof ENDPOINTS] : undefined;
    if (endpoint === undefined) return next();
    const presented = deps.clientCertificate(ctx.req);
    const scopes: Scope[] = presented === undefined ? ['address'] : ['address', 'client'];
    // Every attempt counts against its address and its certificate alike, in one step of the store;
    // the first limit exceeded (the address's, then the client's) answers.
    const counts = await deps.counters.hit(scopes.map((scope) => counter(endpoint, scope, scope === 'client' ? presented!.thumbprint : addressBucket(ctx.ip))));
    const exceeded = scopes.findIndex((scope, i) => counts[i]!.count > limitOf(endpoint, scope).requests);
    if (exceeded === -1) return next();
    const scope = scopes[exceeded]!;
    const retryAfter = Math.max(1, Math.ceil(counts[exceeded]!.msBeforeReset / 1000));
    const description = `too many ${endpoint} requests from this ${scope === 'client' ? 'client certificate' : 'address'}; retry after ${retryAfter} s`;
    writeErrorResponse(ctx, oauthErrorResponse(new DomainError('rate_limited', description, { retryAfterSeconds: retryAfter, outcome: 'rate_limited' })));
    ctx.set('Cache-Control', 'no-store');
    ctx.state.outcome = 'rate_limited';
    deps.logger.warn({ event: 'rate_limited', outcome: 'rate_limited', endpoint, scope }, 'request rate-limited');
  };
}

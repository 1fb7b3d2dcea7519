import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Middleware } from 'koa';
import type { RateLimiterAbstract, RateLimiterRes } from 'rate-limiter-flexible';
import type { MoatConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { addressBucket } from '../tls/trusted-proxies.ts';

/*
 * Rate limits on the endpoints a TPP (or someone pretending to be one) can hammer: PAR, token and
 * registration, per client and per source address. The client is its certificate (the transport
 * certificate is the TPP's identity on these endpoints, and cannot be claimed by anyone else); the
 * address (an IPv6 client's whole /64: addressBucket) catches the unauthenticated. Counters live in Redis when there is one, shared by every
 * instance, with per-instance memory as the fallback during a Redis outage.
 */

const ENDPOINTS = { '/par': 'par', '/token': 'token', '/register': 'registration' } as const;
type Endpoint = (typeof ENDPOINTS)[keyof typeof ENDPOINTS];

/**
 * Makes the counter of one named limit: in Redis with this process's memory as the fallback
 * (src/storage/redis/rate-limiters.ts), or in memory alone (src/storage/embedded/rate-limiters.ts).
 */
export type RateLimiters = (name: string, limit: { requests: number; perSeconds: number }) => RateLimiterAbstract;

export function createRateLimitMiddleware(deps: {
  limits: MoatConfig['rateLimits'];
  limiters: RateLimiters;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  logger: Logger;
}): Middleware {
  const limiters = Object.fromEntries(
    (Object.values(ENDPOINTS) as Endpoint[]).map((endpoint) => [
      endpoint,
      {
        client: deps.limiters(`${endpoint}:client`, deps.limits[endpoint].perClient),
        address: deps.limiters(`${endpoint}:address`, deps.limits[endpoint].perAddress),
      },
    ]),
  ) as Record<Endpoint, { client: RateLimiterAbstract; address: RateLimiterAbstract }>;

  return async (ctx, next) => {
    // The same matching as oidc-provider's router: case-insensitive, trailing slash allowed.
    const path = ctx.path.toLowerCase().replace(/\/+$/, '');
    const endpoint = ctx.method === 'POST' ? ENDPOINTS[path as keyof typeof ENDPOINTS] : undefined;
    if (endpoint === undefined) return next();
    const presented = deps.clientCertificate(ctx.req);
    const checks: [string, RateLimiterAbstract, string][] = [['address', limiters[endpoint].address, addressBucket(ctx.ip)]];
    if (presented !== undefined) checks.push(['client', limiters[endpoint].client, presented.thumbprint]);
    // Both counters in one round trip's time: every attempt counts against its address and its
    // certificate alike, and the first limit exceeded (the address's, then the client's) answers.
    const results = await Promise.allSettled(checks.map(([, limiter, key]) => limiter.consume(createHash('sha256').update(key).digest('base64url'))));
    for (const [i, result] of results.entries()) {
      if (result.status === 'fulfilled') continue;
      const rejected: unknown = result.reason;
      if (rejected instanceof Error) throw rejected;
      const scope = checks[i]![0];
      const retryAfter = Math.max(1, Math.ceil((rejected as RateLimiterRes).msBeforeNext / 1000));
      ctx.status = 429;
      ctx.set('Retry-After', String(retryAfter));
      ctx.set('Cache-Control', 'no-store');
      ctx.body = {
        error: 'temporarily_unavailable',
        error_description: `too many ${endpoint} requests from this ${scope === 'client' ? 'client certificate' : 'address'}; retry after ${retryAfter} s`,
      };
      ctx.state.outcome = 'rate_limited';
      deps.logger.warn({ event: 'rate_limited', outcome: 'rate_limited', endpoint, scope }, 'request rate-limited');
      return;
    }
    await next();
  };
}

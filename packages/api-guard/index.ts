import { createHash, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { verifyDpopProof, type ProofReplayStore } from '../../src/http/dpop-proof.ts';
import { bearerErrorResponse } from '../../src/kernel/error-responses.ts';
import { TokenRejected } from '../../src/kernel/token-rejected.ts';
import { SIGNING_ALGORITHMS } from '../../src/kernel/signing-algorithms.ts';

/*
 * @moat/api-guard — the checks Moat's gateway check makes (src/gateway-check/), in the bank's own
 * Node service, for banks that validate tokens in the service rather than at a gateway (issue 22).
 * Per request: the access token is active — an RFC 9068 JWT verified against Moat's keys, or asked of
 * Moat's introspection endpoint (RFC 7662) — meant for this API (aud = the resource, RFC 8707),
 * carries the route's scopes, and is presented over the certificate (RFC 8705 §3) or with a fresh
 * proof of the DPoP key (RFC 9449 §7) it is bound to; a token bound to neither is refused (FAPI 2.0
 * SP §5.3.2.1). The binding check has no switch.
 *
 * Revocation: with introspection a revoked token or consent is refused on the next request; a JWT is
 * valid until it expires (keep access tokens short, or use introspection or the gateway check).
 */

export interface GuardRoute {
  /** Path prefix (`/accounts`); the longest matching prefix wins; a path no route covers is refused. */
  prefix: string;
  /** Scopes a token must carry, all of them. */
  scopes: string[];
}

/** The token claims the checks read, from a JWT (RFC 9068 §2.2) or an introspection response (RFC 7662 §2.2). */
export interface TokenClaims {
  active?: boolean;
  client_id?: string;
  scope?: string;
  aud?: string | string[];
  sub?: string;
  exp?: number;
  cnf?: { 'x5t#S256'?: string; jkt?: string };
  /** Moat's consent behind the token (present when there is one). */
  consent_id?: string;
}

export interface ApiGuardOptions {
  /** Moat's issuer identifier. */
  issuer: string;
  /** This API's resource identifier (RFC 8707), a `resourceServers` identifier in Moat's configuration. */
  resource: string;
  /** The origin TPPs call this API at (`https://api.bank.example`): DPoP `htu` is checked against it, never a Host header. */
  apiOrigin: string;
  routes: GuardRoute[];
  /**
   * How tokens are read: `jwt` with Moat's JWKS (jose's `createRemoteJWKSet(new URL('<issuer>/jwks'))`),
   * or `introspection` with a function asking Moat (see `mtlsIntrospection`).
   */
  tokens: { format: 'jwt'; keys: JWTVerifyGetKey } | { format: 'introspection'; introspect(token: string): Promise<TokenClaims> };
  /**
   * Where DPoP proof jtis are claimed once (RFC 9449 §11.1). The default is this process's memory;
   * with several instances use a shared store (`redisReplayStore`), or a replayed proof sent to
   * another instance is accepted.
   */
  replay?: ProofReplayStore;
  /** Seconds since the epoch; a test may freeze it. */
  now?: () => number;
}

/** A request as the guard sees it. */
export interface GuardRequest {
  method: string;
  /** Path and query, as the client sent them. */
  url: string;
  authorization: string | undefined;
  dpop: string | undefined;
  /** The client certificate of the connection (or the one your TLS terminator vouches for). */
  certificate: X509Certificate | undefined;
}

export type GuardVerdict =
  | { allowed: true; clientId: string; consentId: string | undefined; scopes: string[]; subject: string | undefined; dpopNonce?: string }
  | { allowed: false; status: 401 | 403; error: string; description: string; wwwAuthenticate: string };

export type ApiGuard = (request: GuardRequest) => Promise<GuardVerdict>;

export function createApiGuard(options: ApiGuardOptions): ApiGuard {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const origin = new URL(options.apiOrigin).origin;
  const routes = [...options.routes].sort((a, b) => b.prefix.length - a.prefix.length);
  const replay = options.replay ?? memoryReplayStore();

  const readClaims = async (token: string): Promise<TokenClaims> => {
    if (options.tokens.format === 'introspection') {
      const claims = await options.tokens.introspect(token);
      if (claims.active !== true) throw new TokenRejected('invalid_token', 'the access token is not active');
      return claims;
    }
    try {
      // RFC 9068 §4: typ at+jwt, the issuer, this resource as audience, FAPI algorithms only.
      const { payload } = await jwtVerify(token, options.tokens.keys, {
        issuer: options.issuer, audience: options.resource, typ: 'at+jwt', algorithms: [...SIGNING_ALGORITHMS], currentDate: new Date(now() * 1000),
      });
      return payload as JWTPayload & TokenClaims;
    } catch {
      throw new TokenRejected('invalid_token', 'the access token is not active, or not a JWT access token Moat issued for this API');
    }
  };

  return async (request) => {
    try {
      const path = URL.parse(request.url, origin)?.pathname ?? '/';
      const route = routes.find((r) => path === r.prefix || path.startsWith(r.prefix.endsWith('/') ? r.prefix : `${r.prefix}/`));
      if (route === undefined) throw new TokenRejected('insufficient_scope', `no route covers ${path.slice(0, 200)}`);
      const [scheme, token, ...rest] = (request.authorization ?? '').split(' ');
      if (token === undefined || token === '' || rest.length > 0 || !/^(Bearer|DPoP)$/i.test(scheme ?? '')) {
        throw new TokenRejected('invalid_request', 'send the access token in the Authorization header (RFC 6750 §2.1 / RFC 9449 §7.1)');
      }
      const claims = await readClaims(token);
      if (typeof claims.exp === 'number' && claims.exp <= now()) throw new TokenRejected('invalid_token', 'the access token is not active');
      if (![claims.aud ?? []].flat().includes(options.resource)) throw new TokenRejected('invalid_token', `the access token is not meant for ${options.resource}`);
      const scopes = (claims.scope ?? '').split(' ').filter((s) => s !== '');
      const missing = route.scopes.filter((s) => !scopes.includes(s));
      if (missing.length > 0) throw new TokenRejected('insufficient_scope', `this call needs the ${missing.join(' ')} scope`);
      // The binding: never skipped, and a token bound to nothing is not accepted (FAPI 2.0 SP §5.3.2.1).
      const x5t = claims.cnf?.['x5t#S256'];
      const jkt = claims.cnf?.jkt;
      if (x5t === undefined && jkt === undefined) throw new TokenRejected('invalid_token', 'the access token is not sender-constrained; this API accepts only certificate- or DPoP-bound tokens');
      if (x5t !== undefined) {
        if (request.certificate === undefined) throw new TokenRejected('invalid_token', 'this access token is bound to a client certificate; present it (RFC 8705 §3)');
        if (createHash('sha256').update(request.certificate.raw).digest('base64url') !== x5t) throw new TokenRejected('invalid_token', 'this access token is bound to a different client certificate (RFC 8705 §3)');
      }
      const dpopNonce = jkt === undefined ? undefined : await verifyDpopProof({
        authorization: request.authorization ?? '', proof: request.dpop ?? '', method: request.method.toUpperCase(), htu: `${origin}${path}`, accessToken: token, jkt,
      }, { replay, now });
      return {
        allowed: true, clientId: String(claims.client_id), consentId: claims.consent_id, scopes, subject: claims.sub, ...(dpopNonce === undefined ? {} : { dpopNonce }),
      };
    } catch (err) {
      if (!(err instanceof TokenRejected)) throw err;
      const refusal = bearerErrorResponse(err, { authorization: request.authorization ?? '', challengeStatusesOnly: true });
      return { allowed: false, status: refusal.status as 401 | 403, error: err.error, description: err.message, wwwAuthenticate: refusal.headers['WWW-Authenticate']! };
    }
  };
}

/** A process's own jti store: fine for one instance; several instances need a shared one (`redisReplayStore`). */
export function memoryReplayStore(): ProofReplayStore {
  const seen = new Map<string, number>();
  return {
    recordOnce(_model, id, _payload, expiresIn) {
      const t = Date.now();
      for (const [key, until] of seen) {
        if (until > t) break;
        seen.delete(key);
      }
      const until = seen.get(id);
      if (until !== undefined && until > t) return Promise.resolve(false);
      seen.set(id, t + expiresIn * 1000);
      return Promise.resolve(true);
    },
  };
}

/** The few calls of an ioredis (or node-redis v4 legacy mode) client this needs. */
export interface RedisSetNx {
  set(key: string, value: string, ex: 'EX', seconds: number, nx: 'NX'): Promise<string | null>;
}

/** DPoP jtis claimed atomically across every instance: Redis SET NX EX. */
export function redisReplayStore(redis: RedisSetNx, keyPrefix = 'api-guard:dpop:'): ProofReplayStore {
  return {
    async recordOnce(_model, id, _payload, expiresIn) {
      return await redis.set(`${keyPrefix}${id}`, '1', 'EX', expiresIn, 'NX') === 'OK';
    },
  };
}

/**
 * Introspection at Moat by this API as a resource server client authenticating with its certificate
 * (tls_client_auth, RFC 8705 §2), `fetch` being one whose TLS presents it (undici's with an Agent
 * carrying `connect: { cert, key, ca }`).
 */
export function mtlsIntrospection(options: { endpoint: string; clientId: string; fetch: typeof fetch }): (token: string) => Promise<TokenClaims> {
  return async (token) => {
    const res = await options.fetch(options.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ client_id: options.clientId, token }).toString(),
    });
    if (res.status !== 200) throw new Error(`introspection at ${options.endpoint} answered HTTP ${res.status}`);
    return await res.json() as TokenClaims;
  };
}

/** The connection's client certificate, when this service terminates TLS itself. */
export function tlsClientCertificate(req: IncomingMessage): X509Certificate | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  return typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
}

/** What the middleware leaves for the route handlers: `ctx.state.moat` (Koa) or `res.locals.moat` (Express). */
export type GuardedCall = Extract<GuardVerdict, { allowed: true }>;

interface MiddlewareOptions {
  /** The client certificate of a request; by default the TLS connection's. */
  certificate?: (req: IncomingMessage) => X509Certificate | undefined;
}

function guardRequestOf(req: IncomingMessage, options: MiddlewareOptions): GuardRequest {
  const header = (name: string) => {
    const values = req.headersDistinct[name];
    return values?.length === 1 ? values[0] : undefined;
  };
  return {
    method: req.method ?? 'GET', url: req.url ?? '/', authorization: header('authorization'), dpop: header('dpop'),
    certificate: (options.certificate ?? tlsClientCertificate)(req),
  };
}

function refuse(res: ServerResponse, verdict: Extract<GuardVerdict, { allowed: false }>): void {
  res.statusCode = verdict.status;
  res.setHeader('WWW-Authenticate', verdict.wwwAuthenticate);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'no-store');
  res.end(JSON.stringify({ error: verdict.error, error_description: verdict.description }));
}

/** Koa middleware: refuses as RFC 6750 §3 / RFC 9449 §7.1 say, or sets `ctx.state.moat` and calls on. */
export function koaApiGuard(guard: ApiGuard, options: MiddlewareOptions = {}) {
  return async (ctx: { req: IncomingMessage; res: ServerResponse; state: Record<string, unknown>; respond?: boolean; set(name: string, value: string): void }, next: () => Promise<unknown>): Promise<void> => {
    const verdict = await guard(guardRequestOf(ctx.req, options));
    if (!verdict.allowed) {
      ctx.respond = false;
      refuse(ctx.res, verdict);
      return;
    }
    if (verdict.dpopNonce !== undefined) ctx.set('DPoP-Nonce', verdict.dpopNonce);
    ctx.state.moat = verdict;
    await next();
  };
}

/** Express middleware: refuses as RFC 6750 §3 / RFC 9449 §7.1 say, or sets `res.locals.moat` and calls `next()`. */
export function expressApiGuard(guard: ApiGuard, options: MiddlewareOptions = {}) {
  return (req: IncomingMessage, res: ServerResponse & { locals: Record<string, unknown> }, next: (err?: unknown) => void): void => {
    guard(guardRequestOf(req, options)).then((verdict) => {
      if (!verdict.allowed) {
        refuse(res, verdict);
        return;
      }
      if (verdict.dpopNonce !== undefined) res.setHeader('DPoP-Nonce', verdict.dpopNonce);
      res.locals.moat = verdict;
      next();
    }, next);
  };
}

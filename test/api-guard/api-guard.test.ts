import { createHash, randomUUID, webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createLocalJWKSet, exportJWK, SignJWT } from 'jose';
import Koa from 'koa';
import * as oauth from 'oauth4webapi';
import { createApiGuard, expressApiGuard, koaApiGuard, mtlsIntrospection, type GuardedCall } from '../../packages/api-guard/index.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { issueLeaf } from '../../src/sandbox/certificate-issuing.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, authorize, onboardTpp, tlsFetch, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Issue 22 point 4: packages/api-guard in a bank's own Node service — Koa with RFC 9068 JWT access
 * tokens, Express with introspection (RFC 7662) by the API's own certificate — each serving mTLS
 * itself, called by real TPPs with tokens from a real Moat. The same refusals as at the gateway.
 */

const ACCOUNTS = 'https://api.bank.example/accounts';
const PAYMENTS = 'https://api.bank.example/payments';

let h: Harness;
let tpp: RegisteredTpp;
let koaApi: Server;
let expressApi: Server;
let koaOrigin: string;
let expressOrigin: string;
let introspectionFetch: ReturnType<typeof tlsFetch>;

async function listen(handler: Parameters<typeof createServer>[1]): Promise<[Server, string]> {
  const material = await ensureSandboxMaterial(h.dataDir);
  const { readFileSync } = await import('node:fs');
  const server = createServer(
    {
      cert: readFileSync(material.serverCertFile),
      key: readFileSync(material.serverKeyFile),
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    handler,
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return [server, `https://localhost:${(server.address() as AddressInfo).port}`];
}

beforeAll(async () => {
  h = await startMoat({
    config: {
      resourceServers: [
        { identifier: ACCOUNTS, scopes: ['accounts'], accessTokenFormat: 'jwt' },
        {
          identifier: PAYMENTS,
          scopes: ['accounts', 'payments'],
          accessTokenFormat: 'opaque',
          client: { clientId: 'rs-payments', tlsClientAuthSubjectDn: 'CN=rs-payments,O=Moat Bank,C=GB' },
        },
      ],
    },
  });
  tpp = await onboardTpp(h);
  const material = await ensureSandboxMaterial(h.dataDir);
  const rsCert = await issueLeaf(
    { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem },
    { subject: [{ C: ['GB'] }, { O: ['Moat Bank'] }, { CN: ['rs-payments'] }], usage: 'clientAuth', now: new Date() },
  );
  introspectionFetch = tlsFetch(material.serverCaPem, rsCert);
  const keys = createLocalJWKSet((await (await tpp.fetch(`${h.issuer}/jwks`)).json()) as Parameters<typeof createLocalJWKSet>[0]);

  // The bank's accounts API: Koa, JWT access tokens.
  const koa = new Koa();
  koa.use(
    koaApiGuard(
      createApiGuard({
        issuer: h.issuer,
        resource: ACCOUNTS,
        apiOrigin: 'https://api.bank.example',
        tokens: { format: 'jwt', keys },
        routes: [
          { prefix: '/accounts', scopes: ['accounts'] },
          { prefix: '/standing-orders', scopes: ['accounts', 'payments'] },
        ],
      }),
    ),
  );
  koa.use((ctx) => {
    ctx.body = { served: ctx.path, moat: ctx.state.moat as GuardedCall };
  });
  [koaApi, koaOrigin] = await listen(koa.callback());

  // The bank's payments API: Express, introspection with its own certificate.
  const app = express();
  app.use(
    expressApiGuard(
      createApiGuard({
        issuer: h.issuer,
        resource: PAYMENTS,
        apiOrigin: 'https://api.bank.example',
        routes: [{ prefix: '/payments', scopes: ['payments'] }],
        tokens: {
          format: 'introspection',
          introspect: mtlsIntrospection({ endpoint: `${h.issuer}/introspect`, clientId: 'rs-payments', fetch: introspectionFetch as typeof fetch }),
        },
      }),
    ),
  );
  app.use((req, res) => {
    res.json({ served: req.path, moat: res.locals.moat as GuardedCall });
  });
  [expressApi, expressOrigin] = await listen(app);
});

afterAll(async () => {
  for (const server of [koaApi, expressApi]) {
    server?.closeAllConnections();
    await new Promise((r) => (server === undefined ? r(undefined) : server.close(r)));
  }
  await introspectionFetch?.close();
  await tpp?.close();
  await h?.close();
});

async function call(f: RegisteredTpp['fetch'], url: string, headers: Record<string, string> = {}) {
  const res = await f(url, { headers });
  return { status: res.status, challenge: res.headers.get('www-authenticate'), body: (await res.json()) as Record<string, unknown> };
}

describe('Koa middleware with RFC 9068 JWT access tokens', () => {
  let token: string;
  beforeAll(async () => {
    token = (await authorizationCodeFlow(h, tpp, { extraParams: { resource: ACCOUNTS } })).tokens.access_token;
  });

  it('serves a certificate-bound token over its certificate, telling the handler who calls under which consent', async () => {
    const seen = await call(tpp.fetch, `${koaOrigin}/accounts/acc-1`, { authorization: `Bearer ${token}` });
    expect(seen.status).toBe(200);
    expect(seen.body.moat).toEqual(
      expect.objectContaining({ allowed: true, clientId: tpp.client.client_id, consentId: expect.any(String), scopes: ['accounts'], subject: 'cust-alice' }),
    );
  });

  it("refuses no token, another TPP's certificate, and a token short of the route's scopes", async () => {
    expect((await call(tpp.fetch, `${koaOrigin}/accounts`)).status).toBe(401);
    const other = await onboardTpp(h);
    try {
      const stolen = await call(other.fetch, `${koaOrigin}/accounts`, { authorization: `Bearer ${token}` });
      expect(stolen.status).toBe(401);
      expect(stolen.challenge).toBe(
        'Bearer error="invalid_token", error_description="this access token is bound to a different client certificate (RFC 8705 section 3)"',
      );
    } finally {
      await other.close();
    }
    const short = await call(tpp.fetch, `${koaOrigin}/standing-orders`, { authorization: `Bearer ${token}` });
    expect(short.status).toBe(403);
    expect(short.challenge).toBe('Bearer error="insufficient_scope", error_description="this call needs the payments scope"');
  });

  it('refuses a token meant for another resource (RFC 8707)', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { extraParams: { resource: PAYMENTS } });
    const seen = await call(tpp.fetch, `${koaOrigin}/accounts`, { authorization: `Bearer ${tokens.access_token}` });
    expect(seen.status).toBe(401);
    expect(seen.body.error).toBe('invalid_token');
  });

  it('accepts a DPoP proof once and refuses it replayed (RFC 9449 §11.1)', async () => {
    const dpopTpp = await onboardTpp(h, { registration: { dpop_bound_access_tokens: true } });
    try {
      const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const { params, codeVerifier } = await authorize(h, dpopTpp, { dpop: oauth.DPoP(dpopTpp.client, keys), extraParams: { resource: ACCOUNTS } });
      const res = await oauth.authorizationCodeGrantRequest(dpopTpp.as, dpopTpp.client, oauth.TlsClientAuth(), params, dpopTpp.redirectUri, codeVerifier, {
        [oauth.customFetch]: dpopTpp.fetch,
        DPoP: oauth.DPoP(dpopTpp.client, keys),
      });
      const dpopToken = (await oauth.processAuthorizationCodeResponse(dpopTpp.as, dpopTpp.client, res)).access_token;
      const proof = await new SignJWT({
        htm: 'GET',
        htu: 'https://api.bank.example/accounts',
        jti: randomUUID(),
        ath: createHash('sha256').update(dpopToken).digest('base64url'),
      })
        .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(keys.publicKey) })
        .setIssuedAt()
        .sign(keys.privateKey);
      expect((await call(dpopTpp.fetch, `${koaOrigin}/accounts`, { authorization: `DPoP ${dpopToken}`, dpop: proof })).status).toBe(200);
      const replay = await call(dpopTpp.fetch, `${koaOrigin}/accounts`, { authorization: `DPoP ${dpopToken}`, dpop: proof });
      expect(replay.status).toBe(401);
      expect(replay.challenge).toMatch(/^DPoP error="invalid_dpop_proof", error_description="DPoP proof replayed/);
    } finally {
      await dpopTpp.close();
    }
  });
});

describe('Express middleware with introspection (RFC 7662)', () => {
  it('serves an active token and refuses it at once when its consent is revoked', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { scope: 'openid payments', extraParams: { resource: PAYMENTS } });
    const allowed = await call(tpp.fetch, `${expressOrigin}/payments/p-1`, { authorization: `Bearer ${tokens.access_token}` });
    expect(allowed.status).toBe(200);
    const moat = allowed.body.moat as GuardedCall;
    expect(moat.clientId).toBe(tpp.client.client_id);
    await h.moat.consents.revoke(moat.consentId!, { actor: 'customer', actorId: 'cust-alice' });
    const refused = await call(tpp.fetch, `${expressOrigin}/payments/p-1`, { authorization: `Bearer ${tokens.access_token}` });
    expect(refused.status).toBe(401);
    expect(refused.challenge).toBe('Bearer error="invalid_token", error_description="the access token is not active"');
  });

  it('refuses a token without the payments scope with 403 insufficient_scope', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { extraParams: { resource: PAYMENTS } });
    const seen = await call(tpp.fetch, `${expressOrigin}/payments`, { authorization: `Bearer ${tokens.access_token}` });
    expect(seen.status).toBe(403);
    expect(seen.body.error).toBe('insufficient_scope');
  });
});

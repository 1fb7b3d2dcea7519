import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID, webcrypto, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { exportJWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { freePort, startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, authorize, onboardTpp, tlsFetch, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Issue 22: the shipped deploy/nginx/bank-api-gateway.conf, run by Debian's nginx, in front of a
 * sample bank API this test starts; nginx terminates the TPP's mTLS and asks Moat's gatewayCheck
 * listener (auth_request) before every request. Only addresses and file paths are rewritten. Each
 * refusal is asserted as the TPP sees it through nginx: the status and the RFC 6750 §3 / RFC 9449
 * §7.1 challenge, and that the bank API was never called.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const NGINX = '/usr/sbin/nginx';
const run = promisify(execFile);
const ACCOUNTS = 'https://api.bank.example/accounts';
const PAYMENTS = 'https://api.bank.example/payments';

let h: Harness;
let dir: string;
let api: Server;
let gateway: string;
/** Every request the sample bank API received, with the headers nginx gave it. */
const reached: { url: string; headers: Record<string, string | string[] | undefined> }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-gateway-'));
  mkdirSync(join(dir, 'tmp'));
  mkdirSync(join(dir, 'moat'));
  const secret = randomBytes(32).toString('hex');
  writeFileSync(join(dir, 'gateway-secret'), `${secret}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'moat', 'gateway-secret.conf'), `proxy_set_header X-Moat-Gateway-Secret "${secret}";\n`);
  const [gatewayPort, checkPort] = [await freePort(), await freePort()];
  gateway = `https://localhost:${gatewayPort}`;
  h = await startMoat({
    config: {
      resourceServers: [
        { identifier: ACCOUNTS, scopes: ['accounts'] },
        { identifier: PAYMENTS, scopes: ['accounts', 'payments'] },
      ],
      gatewayCheck: {
        enabled: true,
        port: checkPort,
        sharedSecretFile: join(dir, 'gateway-secret'),
        forwardedCertificate: 'nginx',
        apiOrigin: gateway,
        routes: [
          { prefix: '/accounts', resource: ACCOUNTS, scopes: ['accounts'] },
          { prefix: '/payments', resource: PAYMENTS, scopes: ['payments'] },
        ],
      },
    },
  });
  // The bank's API: it trusts what nginx forwards, and shows what it was given.
  api = createServer((req, res) => {
    reached.push({ url: req.url ?? '', headers: req.headers });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        path: req.url,
        moat: Object.fromEntries(
          Object.entries(req.headers).filter(([k]) => k.startsWith('x-moat-') || k === 'x-fapi-interaction-id' || k === 'authorization'),
        ),
      }),
    );
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  const material = await ensureSandboxMaterial(h.dataDir);
  copyFileSync(material.serverCertFile, join(dir, 'server.pem'));
  copyFileSync(material.serverKeyFile, join(dir, 'server.key'));
  const site = readFileSync(join(ROOT, 'deploy', 'nginx', 'bank-api-gateway.conf'), 'utf8')
    .replaceAll('/etc/nginx/certs', dir)
    .replaceAll('/etc/nginx/moat', join(dir, 'moat'))
    .replace('server 127.0.0.1:9465;', `server 127.0.0.1:${checkPort};`)
    .replace('server 127.0.0.1:8081;', `server 127.0.0.1:${(api.address() as AddressInfo).port};`)
    .replace('listen 443 ssl;', `listen 127.0.0.1:${gatewayPort} ssl;`);
  writeFileSync(join(dir, 'site.conf'), site);
  writeFileSync(
    join(dir, 'nginx.conf'),
    [
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log;`,
      'events {}',
      'http {',
      `  access_log ${dir}/access.log;`,
      `  client_body_temp_path ${dir}/tmp;`,
      `  proxy_temp_path ${dir}/tmp;`,
      `  include ${dir}/site.conf;`,
      '}',
      '',
    ].join('\n'),
  );
  await run(NGINX, ['-c', join(dir, 'nginx.conf')]);
});

afterAll(async () => {
  if (dir !== undefined) await run(NGINX, ['-c', join(dir, 'nginx.conf'), '-s', 'stop']).catch(() => {});
  api?.closeAllConnections();
  await new Promise((r) => (api === undefined ? r(undefined) : api.close(r)));
  await h?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

interface Seen {
  status: number;
  challenge: string | null;
  body: Record<string, unknown>;
  headers: Headers;
}

/** A call through nginx; `reachedApi` says whether the bank API saw it. */
async function call(
  tpp: RegisteredTpp | ReturnType<typeof tlsFetch>,
  path: string,
  headers: Record<string, string> = {},
): Promise<Seen & { reachedApi: boolean }> {
  const before = reached.length;
  const f = 'fetch' in tpp ? tpp.fetch : tpp;
  const res = await f(`${gateway}${path}`, { headers });
  return {
    status: res.status,
    challenge: res.headers.get('www-authenticate'),
    headers: res.headers,
    body: (await res.json()) as Record<string, unknown>,
    reachedApi: reached.length > before,
  };
}

function thumbprintOf(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('base64url');
}

async function accountsToken(tpp: RegisteredTpp): Promise<string> {
  return (await authorizationCodeFlow(h, tpp, { extraParams: { resource: ACCOUNTS } })).tokens.access_token;
}

describe('the bank API behind nginx with deploy/nginx/bank-api-gateway.conf', () => {
  let tpp: RegisteredTpp;
  let token: string;

  beforeAll(async () => {
    tpp = await onboardTpp(h);
    token = await accountsToken(tpp);
  });
  afterAll(async () => tpp?.close());

  it('lets a certificate-bound token through over its certificate, with what Moat vouches for as headers', async () => {
    const seen = await call(tpp, '/accounts/acc-1/balances', { authorization: `Bearer ${token}`, 'x-moat-client-id': 'someone-else' });
    expect(seen.status).toBe(200);
    const moat = seen.body.moat as Record<string, string>;
    expect(moat['x-moat-client-id']).toBe(tpp.client.client_id);
    expect(moat['x-moat-consent-id']).toEqual(expect.any(String));
    expect(moat['x-moat-account-ids']!.split(',').length).toBeGreaterThan(0);
    expect(moat['x-moat-permissions']).toContain('ReadAccountsBasic');
    expect(moat['x-moat-scope']).toBe('accounts');
    expect(moat['x-moat-subject']).toBe('cust-alice');
    expect(moat['x-fapi-interaction-id']).toMatch(/^[0-9a-f-]{36}$/);
    // The token stays at the gateway.
    expect(moat.authorization).toBeUndefined();
  });

  it('refuses a request without a token (RFC 6750 §3)', async () => {
    const seen = await call(tpp, '/accounts');
    expect(seen).toEqual(expect.objectContaining({ status: 401, reachedApi: false }));
    expect(seen.challenge).toMatch(/^Bearer error="invalid_request", error_description="send the access token in the Authorization header/);
  });

  it("refuses the token over another TPP's certificate (RFC 8705 §3)", async () => {
    const other = await onboardTpp(h);
    try {
      const seen = await call(other, '/accounts', { authorization: `Bearer ${token}` });
      expect(seen).toEqual(expect.objectContaining({ status: 401, reachedApi: false }));
      expect(seen.challenge).toBe(
        'Bearer error="invalid_token", error_description="this access token is bound to a different client certificate (RFC 8705 section 3)"',
      );
    } finally {
      await other.close();
    }
  });

  it('refuses the token without any certificate, and ignores one the client writes into a header', async () => {
    const bare = tlsFetch(tpp.creds.serverCaPem);
    try {
      const seen = await call(bare, '/accounts', { authorization: `Bearer ${token}`, 'x-ssl-client-cert': encodeURIComponent(tpp.creds.certPem) });
      expect(seen).toEqual(expect.objectContaining({ status: 401, reachedApi: false }));
      expect(seen.challenge).toMatch(/error="invalid_token", error_description="this access token is bound to a client certificate; present it/);
    } finally {
      await bare.close();
    }
  });

  it('refuses a token meant for another resource (RFC 8707)', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { extraParams: { resource: PAYMENTS } });
    const seen = await call(tpp, '/accounts', { authorization: `Bearer ${tokens.access_token}` });
    expect(seen).toEqual(expect.objectContaining({ status: 401, reachedApi: false }));
    expect(seen.challenge).toBe(`Bearer error="invalid_token", error_description="the access token is not meant for ${ACCOUNTS}"`);
  });

  it("refuses a token without the route's scope with 403 insufficient_scope (RFC 6750 §3.1)", async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { extraParams: { resource: PAYMENTS } });
    const seen = await call(tpp, '/payments/domestic', { authorization: `Bearer ${tokens.access_token}` });
    expect(seen).toEqual(expect.objectContaining({ status: 403, reachedApi: false }));
    expect(seen.challenge).toBe('Bearer error="insufficient_scope", error_description="this call needs the payments scope"');
  });

  it('refuses a path no route covers', async () => {
    const seen = await call(tpp, '/internal/admin', { authorization: `Bearer ${token}` });
    expect(seen).toEqual(expect.objectContaining({ status: 403, reachedApi: false }));
  });
});

describe('DPoP-bound tokens through nginx (RFC 9449)', () => {
  let tpp: RegisteredTpp;
  let keys: webcrypto.CryptoKeyPair;
  let token: string;

  const proof = async (path: string, claims: { iat?: number; nonce?: string } = {}) =>
    new SignJWT({
      htm: 'GET',
      htu: `${gateway}${path}`,
      jti: randomUUID(),
      ath: createHash('sha256').update(token).digest('base64url'),
      ...(claims.nonce === undefined ? {} : { nonce: claims.nonce }),
    })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(keys.publicKey) })
      .setIssuedAt(claims.iat ?? Math.floor(Date.now() / 1000))
      .sign(keys.privateKey);

  beforeAll(async () => {
    tpp = await onboardTpp(h, { registration: { dpop_bound_access_tokens: true } });
    keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const { params, codeVerifier } = await authorize(h, tpp, { dpop: oauth.DPoP(tpp.client, keys), extraParams: { resource: ACCOUNTS } });
    const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
      [oauth.customFetch]: tpp.fetch,
      DPoP: oauth.DPoP(tpp.client, keys),
    });
    token = (await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, res)).access_token;
  });
  afterAll(async () => tpp?.close());

  it('lets a fresh proof through once, and refuses the same proof again (RFC 9449 §11.1)', async () => {
    const once = await proof('/accounts');
    const first = await call(tpp, '/accounts', { authorization: `DPoP ${token}`, dpop: once });
    expect(first.status).toBe(200);
    const replay = await call(tpp, '/accounts', { authorization: `DPoP ${token}`, dpop: once });
    expect(replay).toEqual(expect.objectContaining({ status: 401, reachedApi: false }));
    expect(replay.challenge).toMatch(/^DPoP error="invalid_dpop_proof", error_description="DPoP proof replayed: its jti was already used/);
  });

  it('asks for a server nonce when a proof is stale, through nginx, and accepts a proof carrying it (RFC 9449 §9)', async () => {
    const stale = await call(tpp, '/accounts', {
      authorization: `DPoP ${token}`,
      dpop: await proof('/accounts', { iat: Math.floor(Date.now() / 1000) - 600 }),
    });
    expect(stale).toEqual(expect.objectContaining({ status: 401, reachedApi: false }));
    expect(stale.challenge).toMatch(/^DPoP error="use_dpop_nonce"/);
    const nonce = stale.headers.get('dpop-nonce');
    expect(nonce).toEqual(expect.any(String));
    const fresh = await call(tpp, '/accounts', { authorization: `DPoP ${token}`, dpop: await proof('/accounts', { nonce: nonce! }) });
    expect(fresh.status).toBe(200);
  });

  it('refuses a proof made for another URL, and a token sent as Bearer', async () => {
    const elsewhere = await call(tpp, '/accounts', { authorization: `DPoP ${token}`, dpop: await proof('/payments') });
    expect(elsewhere.status).toBe(401);
    expect(elsewhere.challenge).toMatch(/error="invalid_dpop_proof", error_description="DPoP proof rejected: htu must be/);
    const bearer = await call(tpp, '/accounts', { authorization: `Bearer ${token}` });
    expect(bearer.status).toBe(401);
    expect(bearer.challenge).toMatch(/error="invalid_token", error_description="this access token is DPoP-bound; use the DPoP authorization scheme/);
  });
});

describe('revocation reaches the gateway at once, whatever was cached', () => {
  // Each test warms the cache with an allowed call, changes state through Moat, and calls again at once.
  const warm = async (tpp: RegisteredTpp, token: string) => {
    expect((await call(tpp, '/accounts', { authorization: `Bearer ${token}` })).status).toBe(200);
    expect(h.moat.tokenFacts.size).toBeGreaterThan(0);
  };

  it('a revoked consent', async () => {
    const tpp = await onboardTpp(h);
    try {
      const token = await accountsToken(tpp);
      const allowed = await call(tpp, '/accounts', { authorization: `Bearer ${token}` });
      expect(allowed.status).toBe(200);
      const consentId = (allowed.body.moat as Record<string, string>)['x-moat-consent-id']!;
      await h.moat.consents.revoke(consentId, { actor: 'customer', actorId: 'cust-alice' });
      const seen = await call(tpp, '/accounts', { authorization: `Bearer ${token}` });
      expect(seen).toEqual(expect.objectContaining({ status: 401, reachedApi: false }));
      expect(seen.challenge).toBe('Bearer error="invalid_token", error_description="the access token is not active"');
    } finally {
      await tpp.close();
    }
  });

  it('a token revoked at the revocation endpoint (RFC 7009)', async () => {
    const tpp = await onboardTpp(h);
    try {
      const token = await accountsToken(tpp);
      await warm(tpp, token);
      const res = await oauth.revocationRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), token, { [oauth.customFetch]: tpp.fetch });
      await oauth.processRevocationResponse(res);
      expect((await call(tpp, '/accounts', { authorization: `Bearer ${token}` })).status).toBe(401);
    } finally {
      await tpp.close();
    }
  });

  it('a revoked client certificate', async () => {
    const tpp = await onboardTpp(h);
    try {
      const token = await accountsToken(tpp);
      await warm(tpp, token);
      expect(await h.moat.certificates.registry.revoke(thumbprintOf(tpp.creds.certPem), { source: 'operator', reason: 'key compromise' })).toBe(true);
      const seen = await call(tpp, '/accounts', { authorization: `Bearer ${token}` });
      expect(seen).toEqual(expect.objectContaining({ status: 401, reachedApi: false }));
      expect(seen.challenge).toMatch(/bound to a certificate that can no longer be used/);
    } finally {
      await tpp.close();
    }
  });

  it('a quarantined client', async () => {
    const tpp = await onboardTpp(h);
    try {
      const token = await accountsToken(tpp);
      await warm(tpp, token);
      await h.moat.threats.restrictions.quarantine(tpp.client.client_id, 'test: suspected compromise', { actor: 'operator', actorId: 'test' });
      const seen = await call(tpp, '/accounts', { authorization: `Bearer ${token}` });
      expect(seen).toEqual(expect.objectContaining({ status: 401, reachedApi: false }));
    } finally {
      await tpp.close();
    }
  });
});

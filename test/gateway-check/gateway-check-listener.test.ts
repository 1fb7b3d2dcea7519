import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.ts';
import { scrapeMetrics, sampleSum } from '../support/admin-metrics.ts';
import { problemsOf } from '../support/config-problems.ts';
import { freePort, startMoat, type Harness } from '../support/moat-harness.ts';
import { createTestCa, issueLeaf, type TestCa, type TestCertificate } from '../support/pki.ts';
import { authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Issue 22: the gateway check has its own listener, asked only by the gateway — with its certificate
 * (mTLS) or, on loopback, the shared secret — and never on the TPP port; its configuration is
 * checked at start-up, naming the key that is wrong.
 */

const ACCOUNTS = 'https://api.bank.example/accounts';
const ROUTES = [{ prefix: '/accounts', resource: ACCOUNTS, scopes: ['accounts'] }];
const RESOURCE_SERVERS = [{ identifier: ACCOUNTS, scopes: ['accounts'] }];

describe('gatewayCheck configuration, checked at start-up', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moat-gateway-config-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const problems = (gatewayCheck: Record<string, unknown>, resourceServers = RESOURCE_SERVERS) =>
    problemsOf(() =>
      validateConfig(
        {
          resourceServers,
          gatewayCheck: { enabled: true, apiOrigin: 'https://api.bank.example', routes: ROUTES, ...gatewayCheck },
        },
        'test',
        dir,
      ),
    );

  it('refuses a listener nobody authenticates to', () => {
    expect(problems({})).toContainEqual(expect.stringMatching(/^gatewayCheck.sharedSecretFile or gatewayCheck.tls: one is required/));
  });

  it('refuses a shared secret off loopback', () => {
    expect(problems({ sharedSecretFile: 's', host: '0.0.0.0' })).toContainEqual(
      expect.stringMatching(/^gatewayCheck.host: a shared secret is accepted only on loopback/),
    );
  });

  it('refuses a route for a resource Moat issues no tokens for, or a scope that resource does not have', () => {
    expect(
      problems({ sharedSecretFile: 's', routes: [{ prefix: '/cards', resource: 'https://api.bank.example/cards', scopes: ['accounts'] }] }),
    ).toContainEqual('gatewayCheck.routes.0.resource: "https://api.bank.example/cards" is not a resourceServers identifier (Moat issues no tokens for it)');
    expect(problems({ sharedSecretFile: 's', routes: [{ prefix: '/accounts', resource: ACCOUNTS, scopes: ['payments'] }] })).toContainEqual(
      `gatewayCheck.routes.0.scopes: "payments" is not a scope of resource server ${ACCOUNTS}`,
    );
  });

  it('refuses a route whose resource server issues JWT access tokens, whose revocation the check could not see', () => {
    expect(problems({ sharedSecretFile: 's' }, [{ ...RESOURCE_SERVERS[0]!, accessTokenFormat: 'jwt' } as never])).toContainEqual(
      expect.stringMatching(/^gatewayCheck.routes.0.resource: resource server https:\/\/api.bank.example\/accounts issues JWT access tokens/),
    );
  });

  it('refuses a route prefix that is not a path, and the same prefix twice', () => {
    expect(problems({ sharedSecretFile: 's', routes: [{ prefix: 'accounts', resource: ACCOUNTS, scopes: ['accounts'] }] })).toContainEqual(
      expect.stringMatching(/^gatewayCheck.routes.0.prefix: expected a path starting with "\/"/),
    );
    expect(problems({ sharedSecretFile: 's', routes: [...ROUTES, ...ROUTES] })).toContainEqual('gatewayCheck.routes.1.prefix: "/accounts" appears twice');
  });

  it('has no setting that turns a check off', () => {
    expect(problems({ sharedSecretFile: 's', skipBinding: true })).toContainEqual(expect.stringMatching(/skipBinding/));
    expect(problems({ sharedSecretFile: 's', routes: [{ ...ROUTES[0], binding: 'none' }] })).toContainEqual(expect.stringMatching(/binding/));
  });
});

describe('the gateway check listener over mTLS', () => {
  let h: Harness;
  let tpp: RegisteredTpp;
  let dir: string;
  let serverCa: TestCa;
  let gateway: TestCertificate;
  let stranger: TestCertificate;
  let token: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-gateway-mtls-'));
    const file = (name: string, content: string) => {
      writeFileSync(join(dir, name), content);
      return join(dir, name);
    };
    serverCa = await createTestCa([{ CN: ['Gateway Check Server CA'] }]);
    const server = await issueLeaf(serverCa, { subject: [{ CN: ['moat-gateway-check'] }], eku: ['serverAuth'], san: { ip: ['127.0.0.1'] } });
    const gatewayCa = await createTestCa([{ O: ['Moat Bank'] }, { CN: ['Gateway CA'] }]);
    gateway = await issueLeaf(gatewayCa, { subject: [{ O: ['Moat Bank'] }, { CN: ['nginx-1'] }] });
    stranger = await issueLeaf(await createTestCa([{ CN: ['Elsewhere CA'] }]), { subject: [{ O: ['Moat Bank'] }, { CN: ['nginx-1'] }] });
    h = await startMoat({
      config: {
        resourceServers: RESOURCE_SERVERS,
        gatewayCheck: {
          enabled: true,
          port: await freePort(),
          apiOrigin: 'https://api.bank.example',
          routes: ROUTES,
          forwardedCertificate: 'nginx',
          tls: {
            certFile: file('server.pem', server.certPem),
            keyFile: file('server.key', server.keyPem),
            clientCaFiles: [file('gateway-ca.pem', gatewayCa.certPem)],
          },
        },
      },
    });
    tpp = await onboardTpp(h);
    token = (await authorizationCodeFlow(h, tpp, { extraParams: { resource: ACCOUNTS } })).tokens.access_token;
  });
  afterAll(async () => {
    await tpp?.close();
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A check as a gateway asks it, with `identity` as the gateway's certificate. */
  const check = (identity: TestCertificate | undefined, headers: Record<string, string>) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((done, fail) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: h.moat.gatewayCheckPort,
          path: '/accounts',
          method: 'GET',
          ca: serverCa.certPem,
          ...(identity === undefined ? {} : { cert: identity.certPem, key: identity.keyPem }),
          headers,
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
          });
          res.on('end', () => done({ status: res.statusCode!, headers: res.headers, body }));
        },
      );
      req.on('error', fail);
      req.end();
    });
  const asked = () => ({ authorization: `Bearer ${token}`, 'x-ssl-client-cert': encodeURIComponent(tpp.creds.certPem) });

  it('answers the gateway that presents a certificate from gatewayCheck.tls.clientCaFiles', async () => {
    const answer = await check(gateway, asked());
    expect(answer.status).toBe(200);
    expect(answer.headers['x-moat-client-id']).toBe(tpp.client.client_id);
  });

  it("answers nobody else, and never with a verdict: a caller without the gateway's certificate gets a 500 the gateway turns away", async () => {
    for (const identity of [undefined, stranger]) {
      const answer = await check(identity, asked());
      expect(answer.status).toBe(500);
      expect(JSON.parse(answer.body)).toEqual(expect.objectContaining({ error: 'gateway_unauthenticated' }));
      expect(answer.headers['x-moat-client-id']).toBeUndefined();
    }
  });

  it('is not served on the TPP port', async () => {
    const res = await tpp.fetch(`${h.issuer}/accounts`, { headers: { authorization: `Bearer ${token}`, 'x-original-uri': '/accounts' } });
    expect(res.status).toBe(404);
    expect(res.headers.get('x-moat-client-id')).toBeNull();
  });
});

describe('the gateway check listener with a shared secret', () => {
  let h: Harness;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-gateway-secret-'));
    writeFileSync(join(dir, 'secret'), randomBytes(32).toString('hex'));
    h = await startMoat({
      config: {
        resourceServers: RESOURCE_SERVERS,
        gatewayCheck: { enabled: true, port: await freePort(), apiOrigin: 'https://api.bank.example', routes: ROUTES, sharedSecretFile: join(dir, 'secret') },
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a caller with a wrong secret or none, and counts it', async () => {
    const before = sampleSum(await scrapeMetrics(h), 'moat_gateway_checks_total', { outcome: 'gateway_unauthenticated' });
    for (const headers of [{}, { 'x-moat-gateway-secret': 'guess'.repeat(13) }]) {
      const res = await fetch(`http://127.0.0.1:${h.moat.gatewayCheckPort}/accounts`, { headers: { ...headers, authorization: 'Bearer x' } });
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual(expect.objectContaining({ error: 'gateway_unauthenticated' }));
    }
    expect(sampleSum(await scrapeMetrics(h), 'moat_gateway_checks_total', { outcome: 'gateway_unauthenticated' })).toBe(before + 2);
  });

  it('counts the checks it answers by outcome', async () => {
    const before = sampleSum(await scrapeMetrics(h), 'moat_gateway_checks_total', { outcome: 'invalid_request' });
    const res = await fetch(`http://127.0.0.1:${h.moat.gatewayCheckPort}/accounts`, {
      headers: { 'x-moat-gateway-secret': readFileSync(join(dir, 'secret'), 'utf8') },
    });
    expect(res.status).toBe(401);
    expect(sampleSum(await scrapeMetrics(h), 'moat_gateway_checks_total', { outcome: 'invalid_request' })).toBe(before + 1);
  });
});

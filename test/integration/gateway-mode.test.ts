import { request } from 'node:http';
import { startGateway } from '../support/gateway.ts';
import { freePort, startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, issueTpp, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/** A plain-HTTP request straight to Moat's port, as the gateway (or someone going around it) sends it. */
function plain(
  port: number,
  init: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: init.method ?? 'GET', path: init.path, headers: { host: 'localhost', ...init.headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/*
 * Behind an mTLS-terminating gateway: Moat takes the client certificate from the gateway's header,
 * only when the connection comes from a trusted proxy address; from anyone else the header is
 * ignored and logged (RFC 8705 behind a proxy, RFC 9440).
 */

describe('Moat behind a trusted gateway', () => {
  let h: Harness;
  let gateway: { port: number; close(): Promise<void> };
  let tpp: RegisteredTpp;

  beforeAll(async () => {
    const gatewayPort = await freePort();
    h = await startMoat({
      config: {
        issuer: `https://localhost:${gatewayPort}`,
        tls: { terminate: false },
        trustedProxies: { addresses: ['127.0.0.1', '::1'], format: 'nginx' },
        rateLimits: { registration: { perClient: { requests: 1000, perSeconds: 60 }, perAddress: { requests: 3, perSeconds: 60 } } },
      },
    });
    gateway = await startGateway(h.dataDir, h.port, gatewayPort);
    tpp = await onboardTpp(h);
  });

  afterAll(async () => {
    await tpp?.close();
    await gateway?.close();
    await h?.close();
  });

  it('registers, authenticates and binds tokens with the forwarded certificate', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp);
    const res = await tpp.fetch(`${h.issuer}/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: tpp.client.client_id, token: tokens.access_token }).toString(),
    });
    const body = (await res.json()) as { active: boolean; cnf: Record<string, string> };
    expect(body.active).toBe(true);
    expect(body.cnf['x5t#S256']).toBe(tpp.creds.summary['x5t#S256']);
  });

  it('takes the client address from X-Forwarded-For: the nearest address that is not a trusted proxy (issue 14)', async () => {
    // What a client wrote to the left of the gateway's own entry is the client's to forge.
    const statuses: number[] = [];
    for (let i = 1; i <= 4; i += 1) {
      statuses.push(
        (
          await plain(h.port, {
            method: 'POST',
            path: '/register',
            body: '{}',
            headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https', 'x-forwarded-for': `203.0.113.${i}, 198.51.100.7, 127.0.0.1` },
          })
        ).status,
      );
    }
    expect(statuses.slice(0, 3)).not.toContain(429);
    expect(statuses[3]).toBe(429);
  });

  it('counts an IPv6 client by its /64: rotating addresses within it does not escape the per-address limit (issue 14)', async () => {
    const register = async (client: string) =>
      (
        await plain(h.port, {
          method: 'POST',
          path: '/register',
          body: '{}',
          headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https', 'x-forwarded-for': `${client}, 127.0.0.1` },
        })
      ).status;
    const statuses: number[] = [];
    for (const suffix of ['a', 'b', 'c', 'd']) statuses.push(await register(`2001:db8:14:1::${suffix}`));
    expect(statuses.slice(0, 3)).not.toContain(429);
    expect(statuses[3]).toBe(429);
    expect(await register('2001:db8:14:2::a')).not.toBe(429);
  });

  it('assumes https for a trusted gateway that sends no X-Forwarded-Proto: the customer pages answer, with Secure cookies (issue 14)', async () => {
    const res = await plain(h.port, { path: '/account/login', headers: { 'x-forwarded-for': '198.51.100.8' } });
    expect(res.status).toBe(200);
    expect(String(res.headers['set-cookie'])).toMatch(/; secure/i);
  });

  it('refuses what a trusted gateway forwards as plain http with 400, not 500 (issue 14)', async () => {
    const res = await plain(h.port, { path: '/account/login', headers: { 'x-forwarded-proto': 'http' } });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toEqual({ error: 'invalid_request', error_description: expect.stringContaining('https') });
  });
});

describe('Moat reached around the gateway', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startMoat({
      config: {
        tls: { terminate: false },
        trustedProxies: { addresses: ['192.0.2.10'], format: 'nginx' },
        rateLimits: { registration: { perClient: { requests: 1000, perSeconds: 60 }, perAddress: { requests: 3, perSeconds: 60 } } },
      },
    });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('ignores a forged certificate header from an untrusted address, and logs it', async () => {
    const tpp = await issueTpp(h);
    const { status, body } = await plain(h.port, {
      method: 'POST',
      path: '/register',
      body: JSON.stringify(tpp.registration),
      headers: { 'content-type': 'application/json', 'x-ssl-client-cert': encodeURIComponent(tpp.certPem), 'x-forwarded-proto': 'https' },
    });
    // Nor can it claim https for its plain connection (issue 14).
    expect(status).toBe(400);
    expect(JSON.parse(body)).toEqual({
      error: 'invalid_request',
      error_description: "this port serves the bank's gateway (trustedProxies) only: send the request over https through the gateway",
    });
    expect(h.logs).toContainEqual(
      expect.objectContaining({
        event: 'forwarded_certificate.ignored',
        reason: 'untrusted-sender',
        header: 'x-ssl-client-cert',
        outcome: 'mtls_untrusted_forwarder',
      }),
    );
  });

  it('counts its requests under its own address, whatever X-Forwarded-For it sends (issue 14)', async () => {
    const statuses: number[] = [];
    for (let i = 1; i <= 4; i += 1) {
      statuses.push(
        (
          await plain(h.port, {
            method: 'POST',
            path: '/register',
            body: '{}',
            headers: { 'content-type': 'application/json', 'x-forwarded-for': `203.0.113.${i}` },
          })
        ).status,
      );
    }
    // The forged-certificate test above made one request from this address already.
    expect(statuses.slice(0, 2)).toEqual([400, 400]);
    expect(statuses.slice(2)).toEqual([429, 429]);
  });

  it('answers the health probes, which come straight to the port', async () => {
    expect((await plain(h.port, { path: '/healthz' })).status).toBe(200);
  });

  it('gets a 400 saying why, never a 500, for a customer page over its plain connection (issue 14)', async () => {
    for (const path of ['/account/login', '/portal', '/authorize?client_id=x&request_uri=urn:x']) {
      const res = await plain(h.port, { path, headers: { 'x-forwarded-proto': 'https' } });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body).error).toBe('invalid_request');
    }
  });
});

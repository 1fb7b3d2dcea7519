import { request } from 'node:http';
import { startGateway } from '../support/gateway.ts';
import { freePort, startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, issueTpp, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

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
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: tpp.client.client_id, token: tokens.access_token }).toString(),
    });
    const body = await res.json() as { active: boolean; cnf: Record<string, string> };
    expect(body.active).toBe(true);
    expect(body.cnf['x5t#S256']).toBe(tpp.creds.summary['x5t#S256']);
  });
});

describe('Moat reached around the gateway', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startMoat({ config: { tls: { terminate: false }, trustedProxies: { addresses: ['192.0.2.10'], format: 'nginx' } } });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('ignores a forged certificate header from an untrusted address, and logs it', async () => {
    const tpp = await issueTpp(h);
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1', port: h.port, method: 'POST', path: '/register',
        headers: { 'content-type': 'application/json', 'x-ssl-client-cert': encodeURIComponent(tpp.certPem), 'x-forwarded-proto': 'https' },
      }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => { text += d.toString(); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(tpp.registration));
    });
    expect(status).toBe(401);
    expect(JSON.parse(body)).toEqual({ error: 'invalid_client', error_description: 'registration requires mutual TLS: present the transport certificate the directory issued to your organisation' });
    expect(h.logs).toContainEqual(expect.objectContaining({
      event: 'forwarded_certificate.ignored', reason: 'untrusted-sender', header: 'x-ssl-client-cert', outcome: 'mtls_untrusted_forwarder',
    }));
  });
});

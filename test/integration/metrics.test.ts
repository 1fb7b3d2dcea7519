import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Prometheus metrics on the admin listener (never the public one): requests by endpoint and outcome,
 * latency, tokens by binding, the PAR → code → token funnel, active consents, certificate expiry.
 */

let h: Harness;
let tpp: RegisteredTpp;
const TOKEN = 'admin-token-for-tests-0123456789';
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-admin-'));
  writeFileSync(join(dir, 'admin.token'), `${TOKEN}\n`);
  h = await startMoat({ config: { admin: { port: 0, tokenFile: join(dir, 'admin.token') } } });
  tpp = await onboardTpp(h);
});
afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

function admin(path: string, token?: string): Promise<{ status: number; body: string; type?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: h.moat.adminPort, path, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers['content-type'] === undefined ? {} : { type: res.headers['content-type'] }) }));
    });
    req.on('error', reject);
    req.end();
  });
}

it('serves metrics only with the admin token', async () => {
  expect((await admin('/metrics')).status).toBe(401);
  expect((await admin('/metrics', 'wrong')).status).toBe(401);
  const res = await admin('/metrics', TOKEN);
  expect(res.status).toBe(200);
  expect(res.type).toMatch(/^text\/plain/);
});

it('is not on the public listener', async () => {
  const res = await tpp.fetch(`${h.issuer}/metrics`);
  expect(res.status).toBe(404);
});

it('counts requests by endpoint and outcome, tokens by binding, the funnel, consents and certificate expiry', async () => {
  await authorizationCodeFlow(h, tpp);
  await tpp.fetch(`${h.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=authorization_code&code=nope&client_id=x' });
  const { body } = await admin('/metrics', TOKEN);
  expect(body).toMatch(/moat_http_requests_total\{endpoint="par",status_class="2xx",outcome="ok"\} [1-9]/);
  expect(body).toMatch(/moat_http_requests_total\{endpoint="token",status_class="4xx",outcome="invalid_client"\} [1-9]/);
  expect(body).toMatch(/moat_http_request_duration_seconds_bucket\{le="[0-9.]+",endpoint="token"\} [1-9]/);
  expect(body).toMatch(/moat_tokens_issued_total\{kind="AccessToken",binding="mtls"\} [1-9]/);
  expect(body).toMatch(/moat_funnel_total\{step="par"\} [1-9]/);
  expect(body).toMatch(/moat_funnel_total\{step="code_redeemed"\} [1-9]/);
  expect(body).toMatch(/moat_consents_active [1-9]/);
  expect(body).toMatch(new RegExp(`moat_certificate_days_to_expiry\\{thumbprint="${tpp.creds.summary['x5t#S256'] as string}",org_id="[^"]+"\\} 36[45]`));
  // No token, code or customer data in any label.
  expect(body).not.toMatch(/alice|nope/);
});

import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import * as oauth from 'oauth4webapi';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorize, authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

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
    const req = request(
      { host: '127.0.0.1', port: h.moat.adminPort, path, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, ...(res.headers['content-type'] === undefined ? {} : { type: res.headers['content-type'] }) }),
        );
      },
    );
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
  await tpp.fetch(`${h.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=authorization_code&code=nope&client_id=x',
  });
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

/** The value of one series in the exposition, 0 when it is not there yet. */
function sample(body: string, series: string): number {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

it('counts a code given back after a failed token request once: issued once, redeemed once, its withdrawn tokens apart (issue 14)', async () => {
  const series = [
    'moat_funnel_total{step="code_issued"}',
    'moat_funnel_total{step="code_redeemed"}',
    'moat_codes_given_back_total',
    'moat_tokens_issued_total{kind="AccessToken",binding="mtls"}',
    'moat_tokens_withdrawn_total{kind="AccessToken",binding="mtls"}',
  ];
  const read = async () => {
    const { body } = await admin('/metrics', TOKEN);
    return series.map((s) => sample(body, s));
  };
  const before = await read();

  const { params, codeVerifier } = await authorize(h, tpp);
  const redeem = () =>
    oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, { [oauth.customFetch]: tpp.fetch });
  // The store refuses the refresh token's write after the code was spent and the access token saved.
  await h.moat.storage.sql.query("ALTER TABLE oidc_model ADD CONSTRAINT test_refuses_refresh_tokens CHECK (model <> 'RefreshToken') NOT VALID");
  try {
    expect((await redeem()).status).toBe(500);
  } finally {
    await h.moat.storage.sql.query('ALTER TABLE oidc_model DROP CONSTRAINT test_refuses_refresh_tokens');
  }
  expect((await redeem()).status).toBe(200);

  const after = await read();
  expect(Object.fromEntries(series.map((s, i) => [s, after[i]! - before[i]!]))).toEqual({
    'moat_funnel_total{step="code_issued"}': 1,
    'moat_funnel_total{step="code_redeemed"}': 1,
    moat_codes_given_back_total: 1,
    // The first request's access token was saved, then withdrawn; the retry's was received.
    'moat_tokens_issued_total{kind="AccessToken",binding="mtls"}': 2,
    'moat_tokens_withdrawn_total{kind="AccessToken",binding="mtls"}': 1,
  });
  const audited = await h.moat.audit.query({ clientId: tpp.client.client_id });
  const withdrawn = audited.filter((r) => r.type === 'token.withdrawn');
  expect(withdrawn).toEqual([
    expect.objectContaining({ actor: 'system', customerId: 'cust-alice', detail: expect.objectContaining({ kind: 'AccessToken', status: 500 }) }),
  ]);
  expect(audited.filter((r) => r.type === 'code.given_back')).toEqual([
    expect.objectContaining({
      actor: 'system',
      customerId: 'cust-alice',
      detail: expect.objectContaining({ status: 500, withdrawn: [withdrawn[0]!.subject] }),
    }),
  ]);
});

import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import { adminRequest, type AdminCall } from '../support/admin-api.ts';
import { adminToken } from '../support/admin-metrics.ts';
import { runMoat } from '../support/cli.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import { introspect } from '../support/consents.ts';

/*
 * The admin API on the admin listener: TPPs, certificates, consents and the audit log for the
 * operator, behind the admin token; what the operator changes takes effect at once and is audited.
 */

let h: Harness;
let tpp: RegisteredTpp;
const TOKEN = 'operator-token-0123456789abcdef';
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-admin-api-'));
  writeFileSync(join(dir, 'admin.token'), TOKEN);
  h = await startMoat({ config: { admin: { port: 0, tokenFile: join(dir, 'admin.token'), allowedHosts: ['moat-admin.ops.svc'] } } });
  tpp = await onboardTpp(h);
});
afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

function admin(
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  token: string | null = TOKEN,
  call: AdminCall = {},
): Promise<{ status: number; body: any }> {
  return adminRequest(h.moat.adminPort!, method, path, { ...(body === undefined ? {} : { body }), ...(token === null ? {} : { token }), ...call });
}

it('refuses every admin request without the admin token', async () => {
  expect((await admin('GET', '/tpps', undefined, null)).status).toBe(401);
  expect((await admin('GET', '/tpps', undefined, 'guess')).status).toBe(401);
});

it('answers a path the admin API does not have with 404 not_found naming it', async () => {
  const missing = await admin('GET', '/no-such-thing');
  expect(missing.status).toBe(404);
  expect(missing.body).toEqual({ error: 'not_found', error_description: 'no admin endpoint GET /no-such-thing' });
});

it('lists TPPs and certificates, and shows one certificate with its history, never its PEM', async () => {
  const tpps = await admin('GET', '/tpps');
  expect(tpps.body).toEqual(expect.arrayContaining([expect.objectContaining({ clients: [expect.objectContaining({ clientId: tpp.client.client_id })] })]));
  const certs = await admin('GET', `/certificates?client=${tpp.client.client_id}`);
  expect(certs.body.map((c: { usage: string }) => c.usage).sort()).toEqual(['signing', 'transport']);
  expect(JSON.stringify(certs.body)).not.toContain('BEGIN CERTIFICATE');
  const one = await admin('GET', `/certificates/${tpp.creds.summary['x5t#S256'] as string}`);
  expect(one.body.events.map((e: { event: string }) => e.event)).toEqual(expect.arrayContaining(['registered', 'linked']));
  expect((await admin('GET', '/certificates?status=lost')).status).toBe(400);
  // Active certificates expiring within a window, as `moat certs expiring` asks.
  const expiring = async (seconds: string) =>
    (await admin('GET', `/certificates?expiringWithin=${seconds}`)).body.map((c: { thumbprint: string }) => c.thumbprint);
  expect(await expiring(String(400 * 86_400))).toContain(tpp.creds.summary['x5t#S256']);
  expect(await expiring('86400')).not.toContain(tpp.creds.summary['x5t#S256']);
  expect((await admin('GET', '/certificates?expiringWithin=soon')).status).toBe(400);
  expect((await admin('GET', '/certificates/nope')).status).toBe(404);
});

it("revokes a customer's consent as the operator: the token dies at once, and the audit log says who and why", async () => {
  const { tokens } = await authorizationCodeFlow(h, tpp);
  const consentId = (tokens as Record<string, unknown>).consent_id as string;
  const listed = await admin('GET', '/consents?customer=cust-alice');
  expect(listed.body.map((c: { id: string }) => c.id)).toContain(consentId);
  expect((await admin('POST', `/consents/${consentId}/revoke`, {})).status).toBe(400);
  const revoked = await admin('POST', `/consents/${consentId}/revoke`, { reason: 'fraud report 4711' });
  expect(revoked.status).toBe(200);
  expect(revoked.body.status).toBe('Revoked');
  expect((await introspect(tpp, tokens.access_token)).active).toBe(false);
  expect((await admin('POST', `/consents/${consentId}/revoke`, { reason: 'again' })).status).toBe(409);
  const audit = await admin('GET', '/audit?type=admin.action');
  // Authenticated by the token, the operator is recorded as admin-token.
  expect(audit.body).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ actor: 'operator', actorId: 'admin-token', detail: { action: 'consent.revoke', consentId, reason: 'fraud report 4711' } }),
    ]),
  );
  expect((await admin('GET', '/audit/verify')).body).toEqual(expect.objectContaining({ intact: true }));
});

it('revokes a certificate as the operator: the TPP cannot authenticate any more', async () => {
  const thumbprint = tpp.creds.summary['x5t#S256'] as string;
  const res = await admin('POST', `/certificates/${thumbprint}/revoke`, { reason: 'key compromise reported by the TPP' });
  expect(res.body).toEqual({ thumbprint, status: 'revoked', changed: true });
  const cc = await oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts' }), {
    [oauth.customFetch]: tpp.fetch,
  });
  expect(cc.status).toBe(401);
  expect((await admin('GET', `/audit?type=certificate.revoked`)).body).toEqual([expect.objectContaining({ actor: 'operator', subject: thumbprint })]);
});

describe("the admin listener against a web page in a browser on the operator's host", () => {
  // What the page's fetch() or form sends: its own origin, and text/plain, which needs no CORS preflight.
  const fromPage = { Origin: 'https://evil.example', 'content-type': 'text/plain' };
  // A TPP of its own: the one above lost its certificate.
  let other: RegisteredTpp;
  beforeAll(async () => {
    other = await onboardTpp(h);
  });
  afterAll(async () => {
    await other?.close();
  });

  it('refuses a Host that is none of its names with 421, token or not: a DNS-rebound page reads nothing', async () => {
    for (const host of ['evil.example', `evil.example:${h.moat.adminPort}`, `localhost.evil.example:${h.moat.adminPort}`, `127.0.0.2:${h.moat.adminPort}`]) {
      const res = await admin('GET', '/tpps', undefined, TOKEN, { headers: { host } });
      expect({ host, status: res.status, error: res.body?.error }).toEqual({ host, status: 421, error: 'misdirected_request' });
      expect(JSON.stringify(res.body)).not.toContain('clients');
    }
    expect(h.logs).toEqual(expect.arrayContaining([expect.objectContaining({ event: 'admin.refused', outcome: 'misdirected_request', header: 'host' })]));
  });

  it("answers its own names on any port (a port-forward's too): loopback, admin.host, admin.allowedHosts", async () => {
    const port = h.moat.adminPort!;
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `[::1]:${port}`,
      'localhost:8080',
      `LocalHost.:${port}`,
      `moat-admin.ops.svc:${port}`,
      'moat-admin.ops.svc',
    ]) {
      expect({ host, status: (await admin('GET', '/tpps', undefined, TOKEN, { headers: { host } })).status }).toEqual({ host, status: 200 });
    }
  });

  it('refuses any request carrying an Origin header with 403, even with the token', async () => {
    for (const origin of ['https://evil.example', 'null', `http://127.0.0.1:${h.moat.adminPort}`]) {
      const res = await admin('GET', '/tpps', undefined, TOKEN, { headers: { origin } });
      expect({ origin, status: res.status, error: res.body.error }).toEqual({ origin, status: 403, error: 'cross_origin_request' });
    }
  });

  it('takes bodies only as application/json (415 otherwise): a text/plain POST changes nothing', async () => {
    const { tokens } = await authorizationCodeFlow(h, other);
    const consentId = (tokens as Record<string, unknown>).consent_id as string;
    const rawBody = JSON.stringify({ reason: 'sent as text/plain' });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await admin('POST', `/consents/${consentId}/revoke`, undefined, TOKEN, { rawBody, headers: { 'content-type': type } });
      expect({ type, status: res.status, error: res.body.error }).toEqual({ type, status: 415, error: 'unsupported_media_type' });
    }
    const page = await admin('POST', `/clients/${other.client.client_id}/quarantine`, undefined, null, { rawBody, headers: fromPage });
    expect(page.status).toBe(403);
    expect((await introspect(other, tokens.access_token)).active).toBe(true);
    expect((await admin('GET', `/clients/restrictions?client=${other.client.client_id}`)).body).toEqual([]);
    // JSON with a charset parameter is JSON.
    const json = await admin('POST', `/consents/${consentId}/revoke`, undefined, TOKEN, {
      rawBody,
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(json.status).toBe(200);
  });
});

describe("the sandbox's admin listener, with no admin.tokenFile configured", () => {
  let sandbox: Harness;
  let victim: RegisteredTpp;
  beforeAll(async () => {
    sandbox = await startMoat();
    victim = await onboardTpp(sandbox);
  });
  afterAll(async () => {
    await victim?.close();
    await sandbox?.close();
  });
  const call = (method: 'GET' | 'POST', path: string, c: AdminCall = {}) => adminRequest(sandbox.moat.adminPort!, method, path, c);

  it('generates its token in the data directory, readable by the owner only', () => {
    const file = join(sandbox.dataDir, 'admin.token');
    expect(sandbox.config.admin.tokenFile).toBe(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
  });

  it('serves nobody without it: a cross-site POST neither quarantines a client nor revokes a consent', async () => {
    const { tokens } = await authorizationCodeFlow(sandbox, victim);
    const consentId = (tokens as Record<string, unknown>).consent_id as string;
    const rawBody = JSON.stringify({ reason: 'a web page did this' });
    // As the page sends it, and as a tool without the token would.
    for (const headers of [{ Origin: 'https://evil.example', 'content-type': 'text/plain' }, { 'content-type': 'application/json' }] as Record<
      string,
      string
    >[]) {
      expect((await call('POST', `/clients/${victim.client.client_id}/quarantine`, { rawBody, headers })).status).toBeGreaterThanOrEqual(401);
      expect((await call('POST', `/consents/${consentId}/revoke`, { rawBody, headers })).status).toBeGreaterThanOrEqual(401);
    }
    expect((await call('GET', '/tpps')).status).toBe(401);
    expect((await introspect(victim, tokens.access_token)).active).toBe(true);
    const restrictions = await call('GET', '/clients/restrictions', { token: adminToken(sandbox) });
    expect(restrictions).toEqual({ status: 200, body: [] });
  });

  it("is found by the CLI in the server's data directory, given --data-dir when run elsewhere", async () => {
    const url = ['--admin-url', `http://127.0.0.1:${sandbox.moat.adminPort}`];
    const found = await runMoat(['tpps', 'list', ...url, '--data-dir', sandbox.dataDir], { env: { MOAT_ISSUER: sandbox.issuer } });
    expect(found).toEqual(expect.objectContaining({ code: 0, out: expect.stringContaining(`client ${victim.client.client_id}`) }));
    const elsewhere = await runMoat(['tpps', 'list', ...url], { env: { MOAT_ISSUER: sandbox.issuer } });
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.err).toMatch(
      /^moat: 401 invalid_token: .* \(there is no admin token at \S+admin\.token, where the sandbox server writes it when it starts: run this where the server runs, or pass its data directory with --data-dir DIR; or give/,
    );
  });
});

it('serves its OpenAPI document, the one committed, and answers a request outside it with the field named', async () => {
  const { adminOpenApi } = await import('../../src/admin/admin-openapi.ts');
  const served = await admin('GET', '/openapi.json');
  expect(served.status).toBe(200);
  expect(served.body).toEqual(JSON.parse(JSON.stringify(adminOpenApi())));
  expect(await admin('GET', '/certificates?status=lost')).toEqual({
    status: 400,
    body: { error: 'invalid_request', error_description: 'status must be one of active, retired, revoked' },
  });
  expect(await admin('GET', '/audit?client=a&client=b')).toEqual({
    status: 400,
    body: { error: 'invalid_request', error_description: 'client is given more than once' },
  });
  expect(await admin('POST', `/clients/${tpp.client.client_id}/step-up`, { reason: 'r', seconds: '3600' })).toEqual({
    status: 400,
    body: { error: 'invalid_request', error_description: 'seconds must be a whole number of seconds up to 30 days' },
  });
});

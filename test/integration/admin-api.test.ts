import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import { adminRequest } from '../support/admin-api.ts';
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
  h = await startMoat({ config: { admin: { port: 0, tokenFile: join(dir, 'admin.token') } } });
  tpp = await onboardTpp(h);
});
afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

function admin(method: 'GET' | 'POST', path: string, body?: unknown, token: string | null = TOKEN): Promise<{ status: number; body: any }> {
  return adminRequest(h.moat.adminPort!, method, path, { ...(body === undefined ? {} : { body }), ...(token === null ? {} : { token }) });
}

it('refuses every admin request without the admin token', async () => {
  expect((await admin('GET', '/tpps', undefined, null)).status).toBe(401);
  expect((await admin('GET', '/tpps', undefined, 'guess')).status).toBe(401);
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
  const expiring = async (seconds: string) => (await admin('GET', `/certificates?expiringWithin=${seconds}`)).body.map((c: { thumbprint: string }) => c.thumbprint);
  expect(await expiring(String(400 * 86_400))).toContain(tpp.creds.summary['x5t#S256']);
  expect(await expiring('86400')).not.toContain(tpp.creds.summary['x5t#S256']);
  expect((await admin('GET', '/certificates?expiringWithin=soon')).status).toBe(400);
  expect((await admin('GET', '/certificates/nope')).status).toBe(404);
});

it('revokes a customer\'s consent as the operator: the token dies at once, and the audit log says who and why', async () => {
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
  expect(audit.body).toEqual(expect.arrayContaining([expect.objectContaining({ actor: 'operator', actorId: 'admin-token', detail: { action: 'consent.revoke', consentId, reason: 'fraud report 4711' } })]));
  expect((await admin('GET', '/audit/verify')).body).toEqual(expect.objectContaining({ intact: true }));
});

it('revokes a certificate as the operator: the TPP cannot authenticate any more', async () => {
  const thumbprint = tpp.creds.summary['x5t#S256'] as string;
  const res = await admin('POST', `/certificates/${thumbprint}/revoke`, { reason: 'key compromise reported by the TPP' });
  expect(res.body).toEqual({ thumbprint, status: 'revoked', changed: true });
  const cc = await oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts' }), { [oauth.customFetch]: tpp.fetch });
  expect(cc.status).toBe(401);
  expect((await admin('GET', `/audit?type=certificate.revoked`)).body).toEqual([expect.objectContaining({ actor: 'operator', subject: thumbprint })]);
});

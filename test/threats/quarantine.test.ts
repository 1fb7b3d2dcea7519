import { adminRequest } from '../support/admin-api.ts';
import { adminToken } from '../support/admin-metrics.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { clientCredentialsToken, introspect, refresh } from '../support/consents.ts';
import { authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * A misbehaving TPP, end to end on a real Moat: a storm of invalid_grant (replayed codes) gets it
 * quarantined with the reason — it can no longer authenticate, its tokens die — until an operator
 * releases it through the admin API; both audited. And a step-up: no refresh, short tokens.
 */

let h: Harness;
let rogue: RegisteredTpp;
let honest: RegisteredTpp;

beforeAll(async () => {
  h = await startMoat({
    config: {
      threats: {
        bucketSeconds: 60,
        warmupBuckets: 5,
        rules: { invalidGrantPerBucket: 5 },
        responses: { low: 'log', medium: 'step-up', high: 'quarantine' },
        stepUp: { accessTokenTtl: 120 },
      },
    },
  });
  [rogue, honest] = await Promise.all([onboardTpp(h), onboardTpp(h)]);
});
afterAll(async () => {
  await rogue?.close();
  await honest?.close();
  await h?.close();
});

/** The operator, with the admin token the sandbox generated. */
function admin(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return adminRequest(h.moat.adminPort!, method, path, { token: adminToken(h), ...(body === undefined ? {} : { body }) });
}

async function tokenRequest(tpp: RegisteredTpp, form: Record<string, string>) {
  const res = await tpp.fetch(tpp.as.token_endpoint!, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: tpp.client.client_id, ...form }).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}

async function eventually<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('quarantines a client that replays codes, with the reason, until an operator releases it', async () => {
  const before = await clientCredentialsToken(rogue, 'accounts');
  const honestToken = await clientCredentialsToken(honest, 'accounts');

  // A replay storm: codes that were never issued (or were used already) — invalid_grant each time.
  for (let i = 0; i < 5; i += 1) {
    const r = await tokenRequest(rogue, {
      grant_type: 'authorization_code',
      code: `replayed-${i}`,
      redirect_uri: rogue.redirectUri,
      code_verifier: 'x'.repeat(43),
    });
    expect(r.body.error).toBe('invalid_grant');
  }
  const restriction = await eventually(async () => {
    const { body } = await admin('GET', `/clients/restrictions?client=${rogue.client.client_id}`);
    return (body as any[]).find((r) => r.kind === 'quarantine');
  }, 'the quarantine');
  expect(restriction.reason).toMatch(/storm of invalid_grant.*5 in one 60 s bucket/);
  expect(restriction.createdBy).toBe('threat-detector');

  // Locked out, told plainly (without the detector's details), on every endpoint it authenticates at.
  const refused = await tokenRequest(rogue, { grant_type: 'client_credentials', scope: 'accounts' });
  expect(refused.status).toBe(401);
  expect(refused.body).toEqual({ error: 'invalid_client', error_description: expect.stringMatching(/quarantined by the bank's security team/) });
  expect(refused.body.error_description).not.toMatch(/invalid_grant|bucket/);
  // Its tokens are dead; the honest TPP is untouched.
  expect((await introspect(honest, before)).active).toBe(false);
  expect((await introspect(honest, honestToken)).active).toBe(true);

  // The flag, with its explanation, and the audit record of the quarantine.
  const flags = (await admin('GET', `/threats/flags?client=${rogue.client.client_id}`)).body as any[];
  expect(flags[0]).toEqual(expect.objectContaining({ signal: 'errors:invalid_grant', severity: 'high', kind: 'rule', seen: 5, response: 'quarantine' }));
  const audited = (await admin('GET', `/audit?client=${rogue.client.client_id}&type=client.quarantined`)).body as any[];
  expect(audited).toHaveLength(1);
  expect(audited[0].detail.reason).toBe(restriction.reason);

  // Released by an operator (a reason is required and audited): it works again.
  expect((await admin('POST', `/clients/${rogue.client.client_id}/release`, {})).status).toBe(400);
  const released = await admin('POST', `/clients/${rogue.client.client_id}/release`, { reason: 'false positive: the TPP redeployed with a bug, now fixed' });
  expect(released.status).toBe(200);
  expect(released.body.releasedBy).toBe('admin-token');
  expect((await tokenRequest(rogue, { grant_type: 'client_credentials', scope: 'accounts' })).status).toBe(200);
  expect((await admin('GET', `/audit?client=${rogue.client.client_id}&type=client.released`)).body).toHaveLength(1);
  expect((await admin('POST', `/clients/${rogue.client.client_id}/release`, { reason: 'again' })).status).toBe(404);
  expect((await admin('GET', '/audit/verify')).body.intact).toBe(true);
});

it('steps a client up: its refresh is refused (fresh consent needed) and its tokens are short', async () => {
  const flow = await authorizationCodeFlow(h, honest);
  expect(flow.tokens.refresh_token).toBeDefined();
  const stepped = await admin('POST', `/clients/${honest.client.client_id}/step-up`, { reason: 'operator: unusual spread of customers', seconds: 3600 });
  expect(stepped.status).toBe(200);

  const refused = await refresh(honest, flow.tokens.refresh_token!);
  expect(refused.status).toBe(400);
  expect(refused.body).toEqual({ error: 'invalid_grant', error_description: expect.stringMatching(/requires fresh customer consent/) });

  // A new authorization works, with a short access token and no refresh token.
  const fresh = await authorizationCodeFlow(h, honest);
  expect(fresh.tokens.expires_in).toBeLessThanOrEqual(120);
  expect(fresh.tokens.refresh_token).toBeUndefined();

  await admin('POST', `/clients/${honest.client.client_id}/release`, { kind: 'step-up', reason: 'reviewed' });
  const again = await authorizationCodeFlow(h, honest);
  expect(again.tokens.refresh_token).toBeDefined();
  expect(again.tokens.expires_in).toBeGreaterThan(120);
});

import { randomUUID } from 'node:crypto';
import { authorizationCodeFlow, issueTpp, onboardTpp, tlsFetch, type RegisteredTpp, type TppCredentials } from '../support/tpp-client.ts';
import { createTestCa, issueLeaf } from '../support/pki.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { issueSandboxTpp } from '../../src/sandbox/tpp-credentials.ts';

/*
 * Issue 7, server-side explanations: in the sandbox a TPP looks up a failed call by its
 * x-fapi-interaction-id over mutual TLS and sees what Moat saw — the certificate presented, which
 * check failed, expected against got — and only its own calls: those made with the certificate it
 * presents, or by a client that certificate is registered for. Runs on Redis (services) and on the
 * in-process store (embedded).
 */

let h: Harness;
let tpp: RegisteredTpp;
/** Trusted (sandbox CA) but registered for no client. */
let stranger: TppCredentials;

beforeAll(async () => {
  h = await startMoat();
  tpp = await onboardTpp(h);
  stranger = await issueTpp(h, { name: 'Stranger Ltd' });
});
afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

type Creds = { certPem: string; keyPem: string } | undefined;

/** One request with a chosen interaction id, over the given certificate (or none). */
async function call(creds: Creds, path: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown>; interactionId: string }> {
  const interactionId = randomUUID();
  const f = tlsFetch(tpp.creds.serverCaPem, creds);
  try {
    const res = await f(`${h.issuer}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), 'x-fapi-interaction-id': interactionId } });
    expect(res.headers.get('x-fapi-interaction-id')).toBe(interactionId);
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, interactionId };
  } finally {
    await f.close();
  }
}

const tokenRequest = (clientId: string): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, scope: 'accounts' }).toString(),
});

interface Looked {
  status: number;
  body: { calls?: Record<string, any>[]; error?: string; error_description?: string };
}

async function lookUp(creds: Creds, interactionId: string): Promise<Looked> {
  const { status, body } = await call(creds, `/diagnostics/calls/${interactionId}`);
  return { status, body };
}

describe('a call refused for its certificate, looked up by x-fapi-interaction-id', () => {
  it('subject mismatch: the failing certificate sees what was presented; only the client sees the registered DN', async () => {
    const refused = await call(stranger, '/token', tokenRequest(tpp.client.client_id));
    expect(refused.status).toBe(401);

    const asCaller = await lookUp(stranger, refused.interactionId);
    expect(asCaller.status).toBe(200);
    const [seen] = asCaller.body.calls!;
    expect(seen).toMatchObject({
      interactionId: refused.interactionId,
      method: 'POST',
      path: '/token',
      status: 401,
      outcome: 'mtls_subject_mismatch',
      error: 'invalid_client',
      clientId: tpp.client.client_id,
      certificate: { subject: stranger.summary.tls_client_auth_subject_dn, 'x5t#S256': stranger.summary['x5t#S256'], chainTrusted: true, via: 'tls' },
      failed: { check: "the certificate's subject is the client's registered tls_client_auth_subject_dn", got: stranger.summary.tls_client_auth_subject_dn },
    });
    // Another client's registration data is not the failing certificate's to read.
    expect(seen!.failed.expected).not.toContain(String(tpp.creds.summary.tls_client_auth_subject_dn));
    expect(JSON.stringify(asCaller.body)).not.toContain(String(tpp.creds.summary.tls_client_auth_subject_dn));

    const asClient = await lookUp(tpp.creds, refused.interactionId);
    expect(asClient.status).toBe(200);
    expect(asClient.body.calls![0]!.failed).toMatchObject({
      expected: tpp.creds.summary.tls_client_auth_subject_dn,
      got: stranger.summary.tls_client_auth_subject_dn,
    });
  });

  it('untrusted chain: names the trust anchors expected and the issuer presented', async () => {
    const foreignCa = await createTestCa([{ CN: ['Elsewhere Root CA'] }]);
    const foreign = await issueLeaf(foreignCa, { subject: [{ O: ['Acme'] }, { CN: ['acme-foreign'] }] });
    const refused = await call(foreign, '/token', tokenRequest(tpp.client.client_id));
    expect(refused.status).toBe(401);
    const { status, body } = await lookUp(foreign, refused.interactionId);
    expect(status).toBe(200);
    expect(body.calls![0]).toMatchObject({
      outcome: 'mtls_untrusted_chain',
      certificate: { chainTrusted: false, issuer: 'CN=Elsewhere Root CA' },
      failed: { check: 'the certificate chains to a trust anchor', got: expect.stringContaining('issued by CN=Elsewhere Root CA') },
    });
    expect(body.calls![0]!.failed.expected).toContain('Moat Sandbox TPP CA');
  });

  it('expired certificate: expected "valid now", got its end date', async () => {
    // Issued by the sandbox CA with the clock set back two years: it ended a year ago.
    const lapsed = await issueSandboxTpp(await ensureSandboxMaterial(h.config.dataDir), {
      name: 'Lapsed Ltd',
      issuer: h.issuer,
      now: new Date(Date.now() - 2 * 365 * 86_400_000),
    });
    const expired = { certPem: lapsed.transportCertPem, keyPem: lapsed.transportKeyPem };
    const refused = await call(expired, '/token', tokenRequest(tpp.client.client_id));
    expect(refused.status).toBe(401);
    const { body } = await lookUp(expired, refused.interactionId);
    expect(body.calls![0]).toMatchObject({
      outcome: 'mtls_expired',
      failed: {
        check: 'the certificate and its chain are within their validity',
        expected: expect.stringMatching(/^valid at \d{4}-/),
        got: expect.stringContaining('expired on'),
      },
    });
  });

  it("no certificate: recorded under the client, readable by the client's certificate", async () => {
    const refused = await call(undefined, '/token', tokenRequest(tpp.client.client_id));
    expect(refused.status).toBe(401);
    const { body } = await lookUp(tpp.creds, refused.interactionId);
    expect(body.calls![0]).toMatchObject({ outcome: 'mtls_no_certificate', failed: { got: 'no certificate' } });
    expect(body.calls![0]!.certificate).toBeUndefined();
  });

  it('a bound token over another certificate: expected the bound thumbprint, got the presented one', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp);
    const refused = await call(stranger, '/sandbox-api/accounts', { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(refused.status).toBe(401);
    const { body } = await lookUp(tpp.creds, refused.interactionId);
    expect(body.calls![0]).toMatchObject({
      outcome: 'mtls_thumbprint_mismatch',
      clientId: tpp.client.client_id,
      failed: { expected: `x5t#S256 ${tpp.creds.summary['x5t#S256']}`, got: `x5t#S256 ${stranger.summary['x5t#S256']}` },
    });
  });
});

describe('who may read a call record', () => {
  let interactionId: string;
  beforeAll(async () => {
    ({ interactionId } = await call(stranger, '/token', tokenRequest(tpp.client.client_id)));
  });

  it('is refused without a certificate (invalid_client, 401)', async () => {
    const { status, body } = await lookUp(undefined, interactionId);
    expect(status).toBe(401);
    expect(body).toMatchObject({ error: 'invalid_client', error_description: expect.stringContaining('present your transport certificate') });
  });

  it('answers an unrelated certificate exactly as for an unknown id (no oracle)', async () => {
    const other = await issueTpp(h, { name: 'Nosy Ltd' });
    const notYours = await lookUp(other, interactionId);
    const unknownId = randomUUID();
    const unknown = await lookUp(other, unknownId);
    expect(notYours.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(notYours.body.error).toBe('not_found');
    expect(notYours.body.error_description!.replace(interactionId, 'ID')).toBe(unknown.body.error_description!.replace(unknownId, 'ID'));
  });

  it("lists the caller's newest calls, successful ones included", async () => {
    const ok = await call(tpp.creds, '/token', tokenRequest(tpp.client.client_id));
    expect(ok.status).toBe(200);
    const { status, body } = await call(tpp.creds, '/diagnostics/calls?limit=50');
    expect(status).toBe(200);
    const calls = body.calls as Record<string, unknown>[];
    expect(calls[0]).toMatchObject({
      interactionId: ok.interactionId,
      status: 200,
      outcome: 'ok',
      path: '/token',
      clientId: tpp.client.client_id,
      madeByClient: true,
    });
    // The stranger's call only named the client: listed apart from the client's own calls.
    expect(calls.find((c) => c.interactionId === interactionId)).toBeUndefined();
    const named = body.callsNamingYourClient as Record<string, unknown>[];
    expect(named.find((c) => c.interactionId === interactionId)).toMatchObject({
      clientId: tpp.client.client_id,
      madeByClient: false,
      outcome: 'mtls_subject_mismatch',
    });
    // Newest first, and never a token or a secret in a record.
    expect(calls.map((c) => c.at)).toEqual([...calls.map((c) => c.at as string)].sort().reverse());
    expect(JSON.stringify(calls)).not.toMatch(/access_token|eyJ[A-Za-z0-9_-]{10,}\./);
  });

  it("keeps the client's own calls in view when others flood it with calls in its name", async () => {
    const own = await call(tpp.creds, '/token', tokenRequest(tpp.client.client_id));
    expect(own.status).toBe(200);
    // More calls naming the client (without its certificate) than a list keeps (recentPerOwner, 50).
    const anonymous = tlsFetch(tpp.creds.serverCaPem, undefined);
    try {
      for (let i = 0; i < 60; i += 1) {
        const refused = await anonymous(`${h.issuer}/token`, tokenRequest(tpp.client.client_id));
        await refused.arrayBuffer();
        expect(refused.status).toBe(401);
      }
    } finally {
      await anonymous.close();
    }
    const { body } = await call(tpp.creds, '/diagnostics/calls?limit=100');
    expect((body.calls as Record<string, unknown>[]).find((c) => c.interactionId === own.interactionId)).toMatchObject({ status: 200, madeByClient: true });
    const named = body.callsNamingYourClient as Record<string, unknown>[];
    expect(named).toHaveLength(50);
    expect(named.every((c) => c.outcome === 'mtls_no_certificate' && c.madeByClient === false)).toBe(true);
    // Looked up by interaction id, the client's call is there as before.
    expect((await lookUp(tpp.creds, own.interactionId)).body.calls![0]).toMatchObject({ status: 200 });
  });

  it('refuses a bad limit with invalid_request', async () => {
    const { status, body } = await call(tpp.creds, '/diagnostics/calls?limit=0');
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_request');
  });
});

describe('switched off', () => {
  let off: Harness;
  beforeAll(async () => {
    off = await startMoat({ config: { diagnostics: { enabled: false } } });
  });
  afterAll(async () => {
    await off?.close();
  });

  it('serves no diagnostics view when diagnostics.enabled is false', async () => {
    const creds = await issueTpp(off);
    const f = tlsFetch(creds.serverCaPem, creds);
    try {
      expect((await f(`${off.issuer}/diagnostics/calls`)).status).toBe(404);
    } finally {
      await f.close();
    }
  });
});

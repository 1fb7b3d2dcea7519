import type { webcrypto } from 'node:crypto';
import { importJWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';
import { runMoat } from '../support/cli.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Decoupled authorisation in poll mode (OpenID Connect CIBA Core 1.0 under FAPI-CIBA), driven by
 * oauth4webapi against a real Moat over mutual TLS; the customer decides with `moat sandbox
 * approve|deny`, which signs in with password and one-time code as the bank app would.
 */

const CIBA = 'urn:openid:params:grant-type:ciba';
let h: Harness;
let tpp: RegisteredTpp;
/** The server's clock runs this far ahead of real time; tests move it instead of sleeping. */
let offsetMs = 0;

beforeAll(async () => {
  h = await startMoat({ now: () => new Date(Date.now() + offsetMs) });
  tpp = await onboardTpp(h, { registration: { grant_types: ['authorization_code', 'refresh_token', CIBA], backchannel_token_delivery_mode: 'poll' } });
});

afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

/** Past the poll interval, as a client that waits as told would be. */
function waitOutInterval(): void {
  offsetMs += 11_000;
}

async function signingKey(): Promise<oauth.PrivateKey> {
  const jwk = tpp.creds.signingJwks.keys[0]!;
  return { key: (await importJWK(jwk, jwk.alg)) as webcrypto.CryptoKey, kid: jwk.kid };
}

/** A signed backchannel authentication request (FAPI-CIBA §5.2.2), sent with mTLS client authentication. */
async function backchannel(params: Record<string, string>, options: { signed?: boolean } = {}) {
  const body = new URLSearchParams({ scope: 'openid accounts', ...params });
  const sent = options.signed === false ? body : new URLSearchParams({ request: await oauth.issueRequestObject(tpp.as, tpp.client, body, await signingKey()) });
  return oauth.backchannelAuthenticationRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), sent, { [oauth.customFetch]: tpp.fetch });
}

async function startRequest(params: Record<string, string> = { login_hint: 'cust-alice', binding_message: 'Till 4 ref 2231' }) {
  const res = await backchannel(params);
  if (res.status !== 200) throw new Error(`backchannel authentication refused: ${res.status} ${await res.text()}`);
  return oauth.processBackchannelAuthenticationResponse(tpp.as, tpp.client, res);
}

async function poll(authReqId: string) {
  const res = await oauth.backchannelAuthenticationGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), authReqId, { [oauth.customFetch]: tpp.fetch });
  return res;
}

async function pollError(authReqId: string): Promise<{ status: number; error: string; description?: string }> {
  const res = await poll(authReqId);
  const body = (await res.json()) as { error: string; error_description?: string };
  return { status: res.status, error: body.error, ...(body.error_description === undefined ? {} : { description: body.error_description }) };
}

/** The customer decides on the bank app; the one-time code is the one their authenticator shows at the server's time. */
function decide(decision: 'approve' | 'deny', ...extra: string[]) {
  const code = totpCode(SANDBOX_CUSTOMERS.find((c) => c.username === 'alice')!.totpSecret, new Date(Date.now() + offsetMs));
  return runMoat(['sandbox', decision, '--customer', 'alice', '--issuer', h.issuer, '--data-dir', h.dataDir, '--code', code, ...extra]);
}

describe('CIBA discovery and client registration', () => {
  it('publishes the backchannel endpoint with poll and ping, never push (FAPI-CIBA §5.2.2)', () => {
    expect(tpp.as.backchannel_authentication_endpoint).toBe(`${h.issuer}/backchannel`);
    expect(tpp.as.backchannel_token_delivery_modes_supported).toEqual(['poll', 'ping']);
    expect(tpp.as.grant_types_supported).toContain(CIBA);
  });

  it('registers a CIBA client with signed requests required, in the algorithm of its keys', () => {
    expect(tpp.client.backchannel_authentication_request_signing_alg).toBe(tpp.creds.signingJwks.keys[0]!.alg);
  });

  it('refuses push mode at registration with invalid_client_metadata', async () => {
    const refused = await onboardTpp(h, {
      registration: { grant_types: [CIBA], backchannel_token_delivery_mode: 'push', backchannel_client_notification_endpoint: 'https://tpp.example/cb' },
    }).catch((err: Error) => err);
    expect(String(refused)).toMatch(/registration failed: 400 .*invalid_client_metadata.*backchannel_token_delivery_mode/);
  });
});

describe('CIBA poll mode (CIBA Core §7, §10.1)', () => {
  it('answers a signed request with an auth_req_id, its lifetime and the poll interval', async () => {
    const started = await startRequest();
    expect(started.auth_req_id).toEqual(expect.any(String));
    expect(started.expires_in).toBeGreaterThan(590);
    expect(started.interval).toBe(5);
  });

  it('refuses an unsigned request with invalid_request (FAPI-CIBA §5.2.2)', async () => {
    const res = await backchannel({ login_hint: 'cust-alice', binding_message: 'Till 4' }, { signed: false });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_request', error_description: 'Request Object must be used by this client' });
  });

  it('refuses a request without client authentication over mTLS', async () => {
    const body = new URLSearchParams({
      request: await oauth.issueRequestObject(
        tpp.as,
        tpp.client,
        new URLSearchParams({ scope: 'openid accounts', login_hint: 'cust-alice', binding_message: 'x' }),
        await signingKey(),
      ),
      client_id: tpp.client.client_id,
    });
    const { tlsFetch } = await import('../support/tpp-client.ts');
    const anonymous = tlsFetch(tpp.creds.serverCaPem);
    try {
      const res = await anonymous(`${h.issuer}/backchannel`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: body.toString(),
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'invalid_client' });
    } finally {
      await anonymous.close();
    }
  });

  it('refuses an unknown customer hint with unknown_user_id (CIBA Core §13)', async () => {
    const res = await backchannel({ login_hint: 'cust-nobody', binding_message: 'Till 4' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'unknown_user_id' });
  });

  it('requires a binding_message when the request has no unique authorization context (FAPI-CIBA §5.2.2)', async () => {
    const res = await backchannel({ login_hint: 'cust-alice' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_binding_message' });
  });

  it('refuses a binding_message that cannot be shown plainly with invalid_binding_message', async () => {
    const res = await backchannel({ login_hint: 'cust-alice', binding_message: '<script>x</script>' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_binding_message' });
  });

  it('caps the lifetime at requested_expiry', async () => {
    const started = await startRequest({ login_hint: 'cust-alice', binding_message: 'Short one', requested_expiry: '120' });
    expect(started.expires_in).toBeLessThanOrEqual(120);
    expect(started.expires_in).toBeGreaterThan(100);
  });

  it('answers authorization_pending, then slow_down to a client polling faster than the interval (CIBA Core §11)', async () => {
    const { auth_req_id: id } = await startRequest();
    waitOutInterval();
    expect(await pollError(id)).toMatchObject({ status: 400, error: 'authorization_pending' });
    const fast = await pollError(id);
    expect(fast).toMatchObject({ status: 400, error: 'slow_down' });
    expect(fast.description).toMatch(/every 10 seconds/);
    waitOutInterval();
    expect(await pollError(id)).toMatchObject({ status: 400, error: 'authorization_pending' });
  });

  it("does not count a poll without client authentication against the client's pace (CIBA Core §11)", async () => {
    const { auth_req_id: id } = await startRequest();
    waitOutInterval();
    const { tlsFetch } = await import('../support/tpp-client.ts');
    const anonymous = tlsFetch(tpp.creds.serverCaPem);
    try {
      // Someone who learnt the auth_req_id polls in the client's name, without its certificate.
      for (let i = 0; i < 2; i += 1) {
        const res = await anonymous(`${h.issuer}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: CIBA, auth_req_id: id, client_id: tpp.client.client_id }).toString(),
        });
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ error: 'invalid_client' });
      }
    } finally {
      await anonymous.close();
    }
    // The client's own poll is its first: pending, not slow_down, and its interval is still the announced one.
    expect(await pollError(id)).toMatchObject({ status: 400, error: 'authorization_pending' });
    expect((await pollError(id)).description).toMatch(/every 10 seconds/);
  });

  it('issues certificate-bound tokens once the customer approves with SCA, and the auth_req_id only once', async () => {
    const { auth_req_id: id } = await startRequest();
    waitOutInterval();
    expect(await pollError(id)).toMatchObject({ error: 'authorization_pending' });
    const approved = await decide('approve', `--request=${id}`);
    expect(approved.err).toBe('');
    expect(approved.out).toMatch(new RegExp(`^approved request ${id} \\(consent sc-`));

    waitOutInterval();
    const tokens = await oauth.processBackchannelAuthenticationGrantResponse(tpp.as, tpp.client, await poll(id));
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    const claims = oauth.getValidatedIdTokenClaims(tokens)!;
    expect(claims.sub).toBe('cust-alice');
    // RTS Art. 4: a decoupled approval is strong customer authentication: a password and a one-time code.
    expect(claims.acr).toBe('urn:openbanking:psd2:sca');
    expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);

    const introspected = await introspect(tokens.access_token);
    // RFC 8705 §3: the token is bound to the TPP's transport certificate.
    expect(introspected).toMatchObject({ active: true, client_id: tpp.client.client_id, cnf: { 'x5t#S256': expect.any(String) } });

    // The consent is Moat's ordinary record, with the accounts the customer shared.
    const consent = (await h.moat.consents.listForClient(tpp.client.client_id)).find((c) => c.grantId !== undefined && tokens.consent_id === c.id);
    expect(consent).toMatchObject({ status: 'Authorised', customerId: 'cust-alice', authentication: { acr: 'urn:openbanking:psd2:sca' } });
    expect(consent?.granted).toMatchObject({
      type: 'account_information',
      accounts: expect.arrayContaining([expect.objectContaining({ accountId: expect.any(String) })]),
    });

    waitOutInterval();
    expect(await pollError(id)).toMatchObject({ status: 400, error: 'invalid_grant' });
  });

  it('shares only the accounts chosen with --accounts', async () => {
    const { auth_req_id: id } = await startRequest();
    const accounts = await h.moat.ciba!.authorisation.offered(await h.moat.ciba!.authorisation.pendingRequest(id, 'cust-alice'));
    expect(accounts.length).toBeGreaterThan(1);
    expect((await decide('approve', `--request=${id}`, '--accounts', accounts[1]!.id)).err).toBe('');
    waitOutInterval();
    const tokens = await oauth.processBackchannelAuthenticationGrantResponse(tpp.as, tpp.client, await poll(id));
    const consent = await h.moat.consents.getForClient(String(tokens.consent_id), tpp.client.client_id);
    expect(consent.granted).toMatchObject({ accounts: [expect.objectContaining({ accountId: accounts[1]!.id })] });
  });

  it('answers access_denied when the customer denies, and records the consent as Rejected', async () => {
    const { auth_req_id: id } = await startRequest();
    const denied = await decide('deny', `--request=${id}`);
    expect(denied.out).toBe(`denied request ${id}\n`);
    waitOutInterval();
    expect(await pollError(id)).toMatchObject({ status: 400, error: 'access_denied' });
    const rejected = (await h.moat.consents.listForClient(tpp.client.client_id)).filter((c) => c.status === 'Rejected' && c.customerId === 'cust-alice');
    expect(rejected.length).toBeGreaterThan(0);
  });

  it('refuses an approval without a one-time code: a password alone is not SCA', async () => {
    const { auth_req_id: id } = await startRequest();
    const res = await tpp.fetch(`${h.issuer}/sandbox/app/api/decisions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'alice-sandbox', request: id, decision: 'approve' }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'sca_required' });
    waitOutInterval();
    expect(await pollError(id)).toMatchObject({ error: 'authorization_pending' });
  });

  it("does not let one customer decide another customer's request", async () => {
    const { auth_req_id: id } = await startRequest({ login_hint: 'cust-bob', binding_message: 'For Bob' });
    const approved = await decide('approve', `--request=${id}`);
    expect(approved.code).toBe(1);
    expect(approved.err).toMatch(/HTTP 404, not_found/);
  });

  it('pauses code entry after too many wrong codes: 429 with Retry-After, as the pages answer (RFC 6585 §4)', async () => {
    const { auth_req_id: id } = await startRequest({ login_hint: 'cust-bob', binding_message: 'Bob guesses' });
    const right = totpCode(SANDBOX_CUSTOMERS.find((c) => c.username === 'bob')!.totpSecret, new Date(Date.now() + offsetMs));
    const wrong = String((Number(right) + 500_000) % 1_000_000).padStart(6, '0');
    const attempt = () =>
      tpp.fetch(`${h.issuer}/sandbox/app/api/decisions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'bob', password: 'bob-sandbox', request: id, decision: 'approve', code: wrong }),
      });
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 7 && statuses.at(-1) !== 429; i += 1) {
      last = (await attempt()) as unknown as Response;
      statuses.push(last.status);
    }
    expect(statuses.slice(0, -1).every((s) => s === 401)).toBe(true);
    expect(statuses.at(-1)).toBe(429);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await last!.json()).toMatchObject({ error: 'access_denied', error_description: expect.stringMatching(/code entry is paused/) });
    waitOutInterval();
    expect(await pollError(id)).toMatchObject({ error: 'authorization_pending' });
  });

  it('refuses to approve a request past its expiry (requested_expiry)', async () => {
    const { auth_req_id: id } = await startRequest({ login_hint: 'cust-alice', binding_message: 'Expiring', requested_expiry: '30' });
    offsetMs += 31_000;
    const late = await decide('approve', `--request=${id}`);
    expect(late.err).toMatch(/HTTP 410, expired/);
  });

  it('answers expired_token to a poll after requested_expiry, and the expired request cannot be approved (CIBA Core §11)', async () => {
    const { auth_req_id: id, expires_in } = await startRequest({ login_hint: 'cust-alice', binding_message: 'Gone soon', requested_expiry: '1' });
    expect(expires_in).toBeLessThanOrEqual(1);
    // oidc-provider dates the request in whole seconds of real time: wait for the second it expires at.
    await new Promise((done) => setTimeout(done, (Math.floor(Date.now() / 1000) + 1) * 1000 - Date.now() + 50));
    expect(await pollError(id)).toMatchObject({ status: 400, error: 'expired_token' });
    const late = await decide('approve', `--request=${id}`);
    expect(late.err).toMatch(/HTTP 410, expired/);
    // Still expired, never tokens: the approval did not reach it.
    waitOutInterval();
    expect(await pollError(id)).toMatchObject({ status: 400, error: 'expired_token' });
  });

  it('names the customer with a login_hint_token the client signed (CIBA Core §7.1)', async () => {
    const jwk = tpp.creds.signingJwks.keys[0]!;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: jwk.alg, kid: jwk.kid })
      .setIssuer(tpp.client.client_id)
      .setAudience(h.issuer)
      .setSubject('cust-alice')
      .setExpirationTime('2m')
      .sign(await importJWK(jwk, jwk.alg));
    const started = await startRequest({ login_hint_token: token, binding_message: 'By token' });
    expect(started.auth_req_id).toEqual(expect.any(String));
    const pending = await h.moat.ciba!.authorisation.pendingRequest(started.auth_req_id, 'cust-alice');
    expect(pending.bindingMessage).toBe('By token');
  });

  it('refuses a login_hint_token signed by someone else with invalid_request', async () => {
    const other = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(tpp.client.client_id)
      .setAudience(h.issuer)
      .setSubject('cust-alice')
      .setExpirationTime('2m')
      .sign(other.privateKey);
    const res = await backchannel({ login_hint_token: token, binding_message: 'Forged' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/^login_hint_token is not valid/) });
  });

  it('names the customer with an id_token_hint from an earlier ID token', async () => {
    const { auth_req_id: first } = await startRequest();
    await decide('approve', `--request=${first}`);
    waitOutInterval();
    const earlier = await oauth.processBackchannelAuthenticationGrantResponse(tpp.as, tpp.client, await poll(first));
    const started = await startRequest({ id_token_hint: earlier.id_token!, binding_message: 'Again' });
    expect((await h.moat.ciba!.authorisation.pendingRequest(started.auth_req_id, 'cust-alice')).customerId).toBe('cust-alice');
  });
});

async function introspect(token: string): Promise<Record<string, unknown>> {
  const res = await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), token, { [oauth.customFetch]: tpp.fetch });
  return oauth.processIntrospectionResponse(tpp.as, tpp.client, res) as Promise<Record<string, unknown>>;
}

import type { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importJWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';
import { runMoat } from '../support/cli.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { createTestCa, issueLeaf } from '../support/pki.ts';
import { onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Ping mode (CIBA Core §10.2): a real HTTPS notification endpoint stands in for the TPP's. When the
 * customer decides, Moat calls it with the bearer client_notification_token and the auth_req_id;
 * a failing endpoint is called again with back-off and the failures are logged; the customer's
 * decision and the TPP's token request never see an error from it.
 */

const CIBA = 'urn:openid:params:grant-type:ciba';

interface Notification {
  authorization: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

let h: Harness;
let tpp: RegisteredTpp;
let receiver: Server;
let dir: string;
const received: Notification[] = [];
/** How many of the next calls the endpoint refuses with a 503, before it answers 204 again. */
let refuseNext = 0;
let onNotification: (() => void) | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-ciba-ping-'));
  const ca = await createTestCa([{ CN: ['TPP Notification CA'] }]);
  const leaf = await issueLeaf(ca, { subject: [{ CN: ['localhost'] }], eku: ['serverAuth'], san: { dns: ['localhost'], ip: ['127.0.0.1'] } });
  writeFileSync(join(dir, 'tpp-ca.pem'), ca.certPem);
  receiver = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      if (refuseNext > 0) {
        refuseNext -= 1;
        res.statusCode = 503;
        res.end('{"error":"busy"}');
        return;
      }
      received.push({ authorization: req.headers.authorization, contentType: req.headers['content-type'], body: JSON.parse(body) });
      res.statusCode = 204;
      res.end();
      onNotification?.();
    });
  });
  await new Promise<void>((done) => receiver.listen(0, '127.0.0.1', done));
  const port = (receiver.address() as { port: number }).port;
  h = await startMoat({ config: { ciba: { ping: { caFile: join(dir, 'tpp-ca.pem'), retryBaseMs: 20, maxAttempts: 4, timeoutMs: 2000 } } } });
  tpp = await onboardTpp(h, {
    registration: {
      grant_types: ['authorization_code', 'refresh_token', CIBA],
      backchannel_token_delivery_mode: 'ping',
      backchannel_client_notification_endpoint: `https://localhost:${port}/ciba/notify`,
    },
  });
}, 60_000);

afterAll(async () => {
  await tpp?.close();
  await h?.close();
  await new Promise((done) => receiver.close(done));
  rmSync(dir, { recursive: true, force: true });
});

async function signedRequest(params: Record<string, string>) {
  const jwk = tpp.creds.signingJwks.keys[0]!;
  const key = { key: (await importJWK(jwk, jwk.alg)) as webcrypto.CryptoKey, kid: jwk.kid };
  const request = await oauth.issueRequestObject(
    tpp.as,
    tpp.client,
    new URLSearchParams({ scope: 'openid accounts', login_hint: 'cust-alice', binding_message: 'Call ref 77', ...params }),
    key,
  );
  return oauth.backchannelAuthenticationRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ request }), {
    [oauth.customFetch]: tpp.fetch,
  });
}

function decide(decision: 'approve' | 'deny', id: string) {
  const code = totpCode(SANDBOX_CUSTOMERS.find((c) => c.username === 'alice')!.totpSecret, new Date());
  return runMoat(['sandbox', decision, '--customer', 'alice', '--issuer', h.issuer, '--data-dir', h.dataDir, '--code', code, `--request=${id}`]);
}

/** Resolves with the next notification the endpoint accepts. */
function nextNotification(): Promise<Notification> {
  return new Promise((done) => {
    onNotification = () => {
      onNotification = undefined;
      done(received[received.length - 1]!);
    };
  });
}

const logged = (event: string) => h.logs.filter((l) => l.event === event && l.clientId === tpp.client.client_id);

describe('CIBA ping mode (CIBA Core §10.2)', () => {
  it('refuses a ping-mode request without a client_notification_token with invalid_request', async () => {
    const res = await signedRequest({});
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_request', error_description: expect.stringMatching(/client_notification_token/) });
  });

  it('calls the notification endpoint with the bearer client_notification_token, then issues the tokens', async () => {
    const started = await oauth.processBackchannelAuthenticationResponse(
      tpp.as,
      tpp.client,
      await signedRequest({ client_notification_token: 'tpp-secret-8a7f' }),
    );
    const notified = nextNotification();
    const approved = await decide('approve', started.auth_req_id);
    expect(approved.err).toBe('');
    const notification = await notified;
    expect(notification).toEqual({ authorization: 'Bearer tpp-secret-8a7f', contentType: 'application/json', body: { auth_req_id: started.auth_req_id } });
    await h.moat.ciba!.ping.settled();
    // The first call reaches the endpoint (on loopback, with the TPP's CA, as configured): nothing failed, nothing retried.
    expect(logged('ciba.ping_failed')).toEqual([]);
    expect(logged('ciba.ping_delivered').at(-1)).toMatchObject({ attempt: 1 });
    const tokens = await oauth.processBackchannelAuthenticationGrantResponse(
      tpp.as,
      tpp.client,
      await oauth.backchannelAuthenticationGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), started.auth_req_id, { [oauth.customFetch]: tpp.fetch }),
    );
    expect(oauth.getValidatedIdTokenClaims(tokens)!.sub).toBe('cust-alice');
  });

  it("retries a failing endpoint with back-off and logs each failure; the customer's approval succeeds regardless", async () => {
    const started = await oauth.processBackchannelAuthenticationResponse(
      tpp.as,
      tpp.client,
      await signedRequest({ client_notification_token: 'tpp-secret-retry' }),
    );
    const failedBefore = logged('ciba.ping_failed').length;
    // Two refusals: the notification arrives at the third attempt.
    refuseNext = 2;
    const notified = nextNotification();
    const approved = await decide('approve', started.auth_req_id);
    expect(approved.code).toBe(0);
    expect((await notified).body).toEqual({ auth_req_id: started.auth_req_id });
    await h.moat.ciba!.ping.settled();
    const failures = logged('ciba.ping_failed').slice(failedBefore);
    expect(failures.map((f) => f.attempt)).toEqual([1, 2]);
    // Back-off: each wait doubles the one before.
    expect(failures.map((f) => f.retryInMs)).toEqual([20, 40]);
    expect(failures.every((f) => String(f.reason).includes('HTTP 503'))).toBe(true);
    expect(logged('ciba.ping_delivered').at(-1)).toMatchObject({ attempt: 3 });
  });

  it('gives up after the configured attempts, and the TPP still gets its result by polling (never a 500)', async () => {
    const started = await oauth.processBackchannelAuthenticationResponse(
      tpp.as,
      tpp.client,
      await signedRequest({ client_notification_token: 'tpp-secret-down' }),
    );
    refuseNext = 100;
    const denied = await decide('deny', started.auth_req_id);
    expect(denied.code).toBe(0);
    await h.moat.ciba!.ping.settled();
    refuseNext = 0;
    expect(logged('ciba.ping_abandoned').at(-1)).toMatchObject({ attempt: 4, outcome: 'ciba_ping_failed' });
    const res = await oauth.backchannelAuthenticationGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), started.auth_req_id, {
      [oauth.customFetch]: tpp.fetch,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'access_denied' });
  });
});

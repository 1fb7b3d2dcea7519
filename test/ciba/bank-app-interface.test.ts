import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import { bankAppNotificationSchema, type BankAppNotification } from '../../src/ciba/bank-app-contract.ts';
import { bankAppOpenApiText } from '../../src/ciba/bank-app-openapi.ts';
import { cibaRegistration, pollOnce, startDecoupled } from '../support/ciba.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { createTestCa, issueLeaf, type TestCertificate } from '../support/pki.ts';
import { onboardTpp, tlsFetch, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * The bank notification interface (docs/bank-app.openapi.json): a real HTTPS endpoint requiring
 * Moat's client certificate stands in for the bank's app; the app completes requests at Moat's
 * callback presenting its own certificate, and reports how it authenticated the customer.
 */

let h: Harness;
let tpp: RegisteredTpp;
let endpoint: Server;
let dir: string;
let bankAppCert: TestCertificate;
const notifications: { body: BankAppNotification; presentedSubject: string }[] = [];
let onNotification: ((n: BankAppNotification) => void) | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-bank-app-'));
  const ca = await createTestCa([{ CN: ['Moat Bank Internal CA'] }]);
  const server = await issueLeaf(ca, { subject: [{ CN: ['localhost'] }], eku: ['serverAuth'], san: { dns: ['localhost'], ip: ['127.0.0.1'] } });
  const moatClient = await issueLeaf(ca, { subject: [{ CN: ['moat'] }, { O: ['Moat Bank'] }] });
  bankAppCert = await issueLeaf(ca, { subject: [{ O: ['Moat Bank'] }, { CN: ['bank-app'] }] });
  for (const [name, text] of Object.entries({ 'ca.pem': ca.certPem, 'moat.pem': moatClient.certPem, 'moat.key': moatClient.keyPem }))
    writeFileSync(join(dir, name), text);
  endpoint = createServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => {
      text += d.toString();
    });
    req.on('end', () => {
      const body = JSON.parse(text) as BankAppNotification;
      if (body.binding_message === 'App down') {
        res.statusCode = 503;
        res.end();
        return;
      }
      notifications.push({ body, presentedSubject: (req.socket as TLSSocket).getPeerCertificate().subject.CN as string });
      res.statusCode = 204;
      res.end();
      onNotification?.(body);
    });
  });
  await new Promise<void>((done) => endpoint.listen(0, '127.0.0.1', done));
  const port = (endpoint.address() as { port: number }).port;
  h = await startMoat({
    config: {
      trustAnchors: [join(dir, 'ca.pem')],
      ciba: {
        bankApp: {
          notificationEndpoint: `https://localhost:${port}/moat/requests`,
          caFile: join(dir, 'ca.pem'),
          clientCertFile: join(dir, 'moat.pem'),
          clientKeyFile: join(dir, 'moat.key'),
          callbackSubjectDn: 'CN=bank-app,O=Moat Bank',
        },
      },
    },
  });
  tpp = await onboardTpp(h, { registration: cibaRegistration() });
}, 60_000);

afterAll(async () => {
  await tpp?.close();
  await h?.close();
  await new Promise((done) => endpoint.close(done));
  rmSync(dir, { recursive: true, force: true });
});

function nextNotification(): Promise<BankAppNotification> {
  return new Promise((done) => {
    onNotification = (n) => {
      onNotification = undefined;
      done(n);
    };
  });
}

/** The bank's app posting its decision to the callback, with its certificate (or another). */
async function callback(url: string, body: Record<string, unknown>, cert: { certPem: string; keyPem: string } = bankAppCert) {
  const f = tlsFetch(tpp.creds.serverCaPem, cert);
  try {
    const res = await f(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } finally {
    await f.close();
  }
}

describe('the bank notification interface (docs/bank-app.openapi.json)', () => {
  it('is documented by the committed OpenAPI document, written from the schemas Moat uses', () => {
    expect(readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'bank-app.openapi.json'), 'utf8')).toBe(bankAppOpenApiText());
  });

  it('tells the bank app of a request over mTLS, in the documented shape; the app approves with SCA and the TPP gets its tokens', async () => {
    const notified = nextNotification();
    const started = await startDecoupled(tpp, { login_hint: 'cust-alice', binding_message: 'Branch 12', purpose: 'To show your balance at the till' });
    const notification = bankAppNotificationSchema.parse(await notified);
    expect(notifications.at(-1)!.presentedSubject).toBe('moat');
    expect(notification).toMatchObject({
      request_id: started.auth_req_id,
      customer_id: 'cust-alice',
      binding_message: 'Branch 12',
      // Why the TPP asks, for the app to show as the consent screen does (issue 18 point 4).
      purpose: 'To show your balance at the till',
      scope: 'openid accounts',
      client: { client_id: tpp.client.client_id },
      callback: `${h.issuer}/bank-app/requests/${encodeURIComponent(started.auth_req_id)}/decision`,
    });
    const chosen = notification.accounts[0]!.account_id;
    const decided = await callback(notification.callback, {
      customer_id: 'cust-alice',
      decision: 'approve',
      accounts: [chosen],
      authentication: { methods: ['hwk', 'user'] },
    });
    expect(decided).toMatchObject({ status: 200, body: { request_id: started.auth_req_id, decision: 'approved', consent_id: expect.any(String) } });
    const tokens = await oauth.processBackchannelAuthenticationGrantResponse(tpp.as, tpp.client, await pollOnce(tpp, started.auth_req_id));
    expect(oauth.getValidatedIdTokenClaims(tokens)).toMatchObject({ sub: 'cust-alice', acr: 'urn:openbanking:psd2:sca', amr: ['hwk', 'user', 'mfa'] });
    const consent = await h.moat.consents.getForClient(String(tokens.consent_id), tpp.client.client_id);
    expect(consent.granted).toMatchObject({ accounts: [expect.objectContaining({ accountId: chosen })] });
  });

  it("refuses an approval the app reports with one factor (sca_required), and a callback without the app's certificate", async () => {
    const notified = nextNotification();
    const started = await startDecoupled(tpp, { login_hint: 'cust-alice', binding_message: 'Branch 13' });
    const { callback: url } = await notified;
    expect(await callback(url, { customer_id: 'cust-alice', decision: 'approve', authentication: { methods: ['pwd'] } })).toMatchObject({
      status: 401,
      body: { error: 'sca_required' },
    });
    expect(await callback(url, { customer_id: 'cust-alice', decision: 'approve', authentication: { methods: ['pwd', 'otp'] } }, tpp.creds)).toMatchObject({
      status: 401,
      body: { error: 'unauthorized_client' },
    });
    expect(await callback(url, { customer_id: 'cust-bob', decision: 'deny' })).toMatchObject({ status: 404, body: { error: 'not_found' } });
    expect(await callback(url, { customer_id: 'cust-alice', decision: 'maybe' })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await callback(url, { customer_id: 'cust-alice', decision: 'deny' })).toMatchObject({ status: 200, body: { decision: 'denied' } });
    expect(await (await pollOnce(tpp, started.auth_req_id)).json()).toMatchObject({ error: 'access_denied' });
  });

  it('answers the TPP normally when the bank app cannot be reached, and logs it (never a 500)', async () => {
    const started = await startDecoupled(tpp, { login_hint: 'cust-alice', binding_message: 'App down' });
    expect(started.auth_req_id).toEqual(expect.any(String));
    expect(h.logs.some((l) => l.event === 'ciba.bank_app_unreachable' && String(l.reason).includes('HTTP 503'))).toBe(true);
  });
});

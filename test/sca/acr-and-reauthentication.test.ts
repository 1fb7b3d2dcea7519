import { decodeJwt } from 'jose';
import { createSqlTotpStore } from '../../src/storage/sql/totp-store.ts';
import { newTotpSecret } from '../../src/sca/totp.ts';
import { adminToken } from '../support/admin-metrics.ts';
import { adminRequest } from '../support/admin-api.ts';
import { redeem, refresh } from '../support/consents.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import {
  authorizationCodeFlow,
  authorize,
  Browser,
  customerConsents,
  hiddenField,
  onboardTpp,
  pushAuthorization,
  signInAtInteraction,
  tlsFetch,
  type RegisteredTpp,
  useMoatWithTpp,
} from '../support/tpp-client.ts';
import { createCustomer, serverSecretBox } from './support.ts';

/*
 * acr and amr that tell the truth (issue 16 §3), when SCA is needed (§4): a required SCA is given
 * or refused with the standard error, never silently less; a stepped-up client gets a real second
 * factor; account access's refresh tokens stop after sca.accountAccessReauthDays (RTS Art. 10a),
 * with the server's clock moved forward instead of waiting.
 */

const SCA = 'urn:openbanking:psd2:sca';
const CA = 'urn:openbanking:psd2:ca';

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

async function errorOf(options: Parameters<typeof customerConsents>[3] & { scope?: string; extraParams?: Record<string, string> }): Promise<URLSearchParams> {
  const { requestUri } = await pushAuthorization(tpp, options);
  return new URL(await customerConsents(h, tpp, requestUri, options)).searchParams;
}

describe('acr in discovery and tokens (issue 16 §3)', () => {
  it('publishes acr_values_supported: urn:openbanking:psd2:sca and urn:openbanking:psd2:ca', async () => {
    const f = tlsFetch(tpp.creds.serverCaPem);
    try {
      const metadata = (await (await f(`${h.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      expect(metadata.acr_values_supported).toEqual([SCA, CA]);
    } finally {
      await f.close();
    }
  });

  it('says ca and pwd for a customer who signed in with a password alone to share nothing but who they are', async () => {
    const lena = await createCustomer(h, 'lena');
    const { tokens } = await authorizationCodeFlow(h, tpp, { scope: 'openid', customer: lena });
    expect(decodeJwt(tokens.id_token!)).toEqual(expect.objectContaining({ sub: lena.id, acr: CA, amr: ['pwd'] }));
  });
});

describe('SCA a customer cannot give (OpenID Connect Core Unmet Authentication Requirements 1.0)', () => {
  let mia: Awaited<ReturnType<typeof createCustomer>>;
  beforeAll(async () => {
    mia = await createCustomer(h, 'mia');
  });

  it('answers account access by a customer without a second factor with unmet_authentication_requirements', async () => {
    const params = await errorOf({ scope: 'openid accounts', customer: mia });
    expect(params.get('error')).toBe('unmet_authentication_requirements');
    expect(params.get('error_description')).toMatch(/strong customer authentication is required \(account_access\)/);
  });

  it('answers acr_values=sca the same way, never with a ca login (OIDC Core §3.1.2.1)', async () => {
    const params = await errorOf({ scope: 'openid', extraParams: { acr_values: SCA }, customer: mia });
    expect(params.get('error')).toBe('unmet_authentication_requirements');
    expect(params.get('error_description')).toMatch(/requested_by_client/);
  });

  it('answers an essential acr claim with values Moat does not offer with unmet_authentication_requirements', async () => {
    const claims = JSON.stringify({ id_token: { acr: { essential: true, values: ['urn:example:loa:4'] } } });
    const { requestUri } = await pushAuthorization(tpp, { scope: 'openid', extraParams: { claims } });
    const params = new URL(await customerConsents(h, tpp, requestUri)).searchParams;
    expect(params.get('error')).toBe('unmet_authentication_requirements');
  });

  it('meets an essential acr claim for sca with SCA (OIDC Core §5.5.1.1)', async () => {
    const claims = JSON.stringify({ id_token: { acr: { essential: true, values: [SCA] } } });
    const { tokens } = await authorizationCodeFlow(h, tpp, { scope: 'openid', extraParams: { claims } });
    expect(decodeJwt(tokens.id_token!).acr).toBe(SCA);
  });
});

describe('stepping up a session (issue 16 §3)', () => {
  it('asks a customer signed in with a password for password and code when the TPP then requires SCA', async () => {
    const nina = await createCustomer(h, 'nina');
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const open = async (extraParams: Record<string, string> = {}) => {
        const { requestUri } = await pushAuthorization(tpp, { scope: 'openid', extraParams });
        return browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      };
      const first = await open();
      const uid = new URL(first.url, h.issuer).pathname.split('/')[2]!;
      const signedIn = await signInAtInteraction(browser, uid, hiddenField(await first.res.text(), 'csrf'), nina);
      expect(await signedIn.res.text()).toContain('/consent"');
      // Nina sets up an authenticator app; the browser keeps its ca session.
      const secret = newTotpSecret();
      const store = createSqlTotpStore(h.moat.storage.sql);
      await store.savePending(nina.id, serverSecretBox(h).seal(secret, nina.id));
      await store.confirm(nina.id, new Date());
      const stepUp = await open({ acr_values: SCA });
      const page = await stepUp.res.text();
      expect(page).toMatch(/action="\/interaction\/[^"]+\/login"/);
    } finally {
      await browser.close();
    }
  });
});

describe("threat detection's step-up means a real second factor (issue 16 §4)", () => {
  it("asks a stepped-up client's customers for SCA even to sign in, and refuses a password alone", async () => {
    const stepped = await onboardTpp(h, { name: 'Stepped Fintech' });
    try {
      const olga = await createCustomer(h, 'olga');
      const before = await authorizationCodeFlow(h, stepped, { scope: 'openid', customer: olga });
      expect(decodeJwt(before.tokens.id_token!).acr).toBe(CA);
      const res = await adminRequest(h.moat.adminPort!, 'POST', `/clients/${stepped.client.client_id}/step-up`, {
        token: adminToken(h),
        body: { reason: 'test: unusual activity', seconds: 600 },
      });
      expect(res.status).toBe(200);
      const { requestUri } = await pushAuthorization(stepped, { scope: 'openid' });
      const refused = new URL(await customerConsents(h, stepped, requestUri, { customer: olga })).searchParams;
      expect(refused.get('error')).toBe('unmet_authentication_requirements');
      expect(refused.get('error_description')).toMatch(/threat_step_up/);
      const strong = await authorizationCodeFlow(h, stepped, { scope: 'openid' });
      expect(decodeJwt(strong.tokens.id_token!)).toEqual(expect.objectContaining({ acr: SCA, amr: ['pwd', 'otp', 'mfa'] }));
    } finally {
      await stepped.close();
    }
  });
});

describe('account access re-authentication (RTS on SCA Art. 10a)', () => {
  let clocked: Harness;
  let clockedTpp: RegisteredTpp;
  let offsetDays = 0;
  beforeAll(async () => {
    clocked = await startMoat({ config: { sca: { accountAccessReauthDays: 90 } }, now: () => new Date(Date.now() + offsetDays * 86_400_000) });
    clockedTpp = await onboardTpp(clocked);
  });
  afterAll(async () => {
    await clockedTpp?.close();
    await clocked?.close();
  });

  it('refreshes within the configured days and refuses after them, naming the reason', async () => {
    const code = await authorize(clocked, clockedTpp, { scope: 'openid accounts' });
    const { body: tokens } = await redeem(clockedTpp, code);
    const consent = await clocked.moat.consents.getForClient(tokens.consent_id as string, clockedTpp.client.client_id);
    expect(consent.authentication?.acr).toBe(SCA);

    offsetDays = 89;
    const within = await refresh(clockedTpp, tokens.refresh_token as string);
    expect(within.status).toBe(200);

    offsetDays = 91;
    const after = await refresh(clockedTpp, (within.body.refresh_token ?? tokens.refresh_token) as string);
    expect(after.status).toBe(400);
    expect(after.body.error).toBe('invalid_grant');
    expect(after.body.error_description).toMatch(/more than 90 days ago \(PSD2 RTS Art\. 10a\): start a new authorization/);
  });
});

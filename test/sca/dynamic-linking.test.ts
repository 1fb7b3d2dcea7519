import { paymentLinkHash, paymentLinkOf } from '../../src/sca/dynamic-linking.ts';
import { totpCode } from '../../src/sca/totp.ts';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import type { PaymentInitiationDetail } from '../../src/consents/authorization-details.ts';
import { clientCredentialsToken, consentApi, domesticPaymentBody, intentClaims, redeem } from '../support/consents.ts';
import type { Harness } from '../support/moat-harness.ts';
import {
  accountChoices,
  authorize,
  Browser,
  hiddenField,
  pushAuthorization,
  signInAtInteraction,
  type RegisteredTpp,
  useMoatWithTpp,
} from '../support/tpp-client.ts';

/*
 * Dynamic linking (PSD2 RTS on SCA Art. 5): the customer sees the amount and the payee while
 * authenticating, the authentication is specific to them, and a payment whose values differ from
 * what was authenticated is refused — tested by tampering with the stored consent.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));
const alice = SANDBOX_CUSTOMERS[0];

async function lodgePayment(): Promise<string> {
  const token = await clientCredentialsToken(tpp, 'payments');
  const res = await consentApi(tpp, 'POST', '/pisp/domestic-payment-consents', {
    token,
    body: domesticPaymentBody(),
    headers: { 'x-idempotency-key': crypto.randomUUID() },
  });
  return res.body.Data.ConsentId as string;
}

/** Opens the authorization for a lodged payment and signs in with the password: the code page. */
async function atPaymentCodePage(browser: Browser, consentId: string): Promise<{ uid: string; page: string }> {
  const { requestUri } = await pushAuthorization(tpp, { scope: 'openid payments', extraParams: { claims: intentClaims(consentId) } });
  const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
  const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
  const login = await browser.follow(`/interaction/${uid}/login`, {
    method: 'POST',
    form: { username: alice.username, password: alice.password, csrf: hiddenField(await start.res.text(), 'csrf') },
  });
  return { uid, page: await login.res.text() };
}

/** Password and code for a lodged payment: the consent page that follows. */
async function authenticatedFor(browser: Browser, consentId: string): Promise<{ res: Response; url: string }> {
  const { requestUri } = await pushAuthorization(tpp, { scope: 'openid payments', extraParams: { claims: intentClaims(consentId) } });
  const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
  const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
  return signInAtInteraction(browser, uid, hiddenField(await start.res.text(), 'csrf'));
}

async function approve(browser: Browser, consentPage: { res: Response; url: string }): Promise<URL> {
  const html = await consentPage.res.text();
  const uid = new URL(consentPage.url, h.issuer).pathname.split('/')[2]!;
  const form: [string, string][] = [
    ['csrf', hiddenField(html, 'csrf')],
    ['decision', 'approve'],
    ['accounts', accountChoices(html).values[0]!],
  ];
  const done = await browser.follow(`/interaction/${uid}/consent`, { method: 'POST', form });
  return new URL(done.location!);
}

const requestedOf = async (consentId: string) => (await h.moat.consents.getForClient(consentId, tpp.client.client_id)).requested as PaymentInitiationDetail;

describe('the one-time code for a payment (RTS on SCA Art. 5(1)(a), (b))', () => {
  it('is asked beside the amount and the payee, and the consent records the values it was linked to', async () => {
    const consentId = await lodgePayment();
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const { uid, page } = await atPaymentCodePage(browser, consentId);
      expect(page).toContain('Confirm the payment with your code');
      expect(page).toMatch(/<dt>Amount<\/dt><dd class="amount">£42\.50<\/dd>/);
      expect(page).toContain('ACME Energy Ltd');
      // The code field's own label names the amount and the payee (read out with the field).
      expect(page).toMatch(/<label for="code">6-digit code for £42\.50 to ACME Energy Ltd<\/label>/);
      const link = paymentLinkOf(consentId, await requestedOf(consentId));
      expect(hiddenField(page, 'payment_link')).toBe(paymentLinkHash(link));

      const coded = await browser.follow(`/interaction/${uid}/totp`, {
        method: 'POST',
        form: { csrf: hiddenField(page, 'csrf'), payment_link: hiddenField(page, 'payment_link'), code: totpCode(alice.totpSecret, new Date()) },
      });
      const callback = await approve(browser, coded);
      expect(callback.searchParams.get('code')).not.toBeNull();
      const consent = await h.moat.consents.getForClient(consentId, tpp.client.client_id);
      expect(consent.status).toBe('Authorised');
      expect(consent.authentication).toEqual(
        expect.objectContaining({ acr: 'urn:openbanking:psd2:sca', amr: ['pwd', 'otp', 'mfa'], linkHash: paymentLinkHash(link) }),
      );
      const { rows } = await h.moat.storage.sql.query<{ sca_link: unknown }>('SELECT sca_link FROM consent WHERE id = $1', [consentId]);
      expect(rows[0]!.sca_link).toEqual(link);
    } finally {
      await browser.close();
    }
  });

  it('is refused when the payment changed while the code page was shown, and the page shows the new values', async () => {
    const consentId = await lodgePayment();
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const { uid, page } = await atPaymentCodePage(browser, consentId);
      await h.moat.storage.sql.query(`UPDATE consent SET requested = jsonb_set(requested, '{instructedAmount,amount}', '"4250.00"') WHERE id = $1`, [
        consentId,
      ]);
      const res = await browser.request(`/interaction/${uid}/totp`, {
        method: 'POST',
        form: { csrf: hiddenField(page, 'csrf'), payment_link: hiddenField(page, 'payment_link'), code: totpCode(alice.totpSecret, new Date()) },
      });
      expect(res.status).toBe(409);
      const again = await res.text();
      expect(again).toContain('The payment details changed while you were signing in');
      expect(again).toContain('£4,250.00');
    } finally {
      await browser.close();
    }
  });
});

describe('authorising a payment (RTS on SCA Art. 5(1)(d))', () => {
  it('refuses the consent when its amount changed between authentication and authorisation', async () => {
    const consentId = await lodgePayment();
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const authenticated = await authenticatedFor(browser, consentId);
      // Tampering after the SCA: the stored payment now says another amount.
      await h.moat.storage.sql.query(`UPDATE consent SET requested = jsonb_set(requested, '{instructedAmount,amount}', '"4250.00"') WHERE id = $1`, [
        consentId,
      ]);
      const callback = await approve(browser, authenticated);
      expect(callback.searchParams.get('error')).toBe('access_denied');
      expect(callback.searchParams.get('error_description')).toMatch(/differs from what the customer authenticated \(PSD2 RTS Art\. 5\)/);
      expect((await h.moat.consents.getForClient(consentId, tpp.client.client_id)).status).toBe('AwaitingAuthorisation');
      expect(h.logs.some((l) => l.event === 'sca.refused' && l.outcome === 'sca_not_linked' && l.consentId === consentId)).toBe(true);
    } finally {
      await browser.close();
    }
  });

  it('refuses the consent when the payee changed', async () => {
    const consentId = await lodgePayment();
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const authenticated = await authenticatedFor(browser, consentId);
      await h.moat.storage.sql.query(
        `UPDATE consent SET requested = jsonb_set(requested, '{creditorAccount,identification}', '"99999999999999"') WHERE id = $1`,
        [consentId],
      );
      expect((await approve(browser, authenticated)).searchParams.get('error')).toBe('access_denied');
    } finally {
      await browser.close();
    }
  });

  it('links an RFC 9396 payment_initiation to the consent it creates', async () => {
    const detail = {
      type: 'payment_initiation',
      instructedAmount: { amount: '12.34', currency: 'GBP' },
      creditorName: 'Corner Shop Ltd',
      creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '11223344556677' },
    } as const;
    const code = await authorize(h, tpp, { scope: 'openid payments', extraParams: { authorization_details: JSON.stringify([detail]) } });
    const { body: tokens } = await redeem(tpp, code);
    const consent = await h.moat.consents.getForClient(tokens.consent_id as string, tpp.client.client_id);
    expect(consent.authentication?.linkHash).toBe(paymentLinkHash(paymentLinkOf(consent.id, detail)));
  });

  it('needs a fresh SCA every time: a signed-in browser is asked for password and code again', async () => {
    const browser = new Browser(h, tpp.creds.serverCaPem);
    try {
      const first = await atPaymentCodePage(browser, await lodgePayment());
      const coded = await browser.follow(`/interaction/${first.uid}/totp`, {
        method: 'POST',
        form: { csrf: hiddenField(first.page, 'csrf'), payment_link: hiddenField(first.page, 'payment_link'), code: totpCode(alice.totpSecret, new Date()) },
      });
      expect((await approve(browser, coded)).searchParams.get('code')).not.toBeNull();
      // Same browser, same session cookie: the next payment starts at the sign-in page again.
      const { requestUri } = await pushAuthorization(tpp, { scope: 'openid payments', extraParams: { claims: intentClaims(await lodgePayment()) } });
      const second = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const html = await second.res.text();
      expect(html).toMatch(/action="\/interaction\/[^"]+\/login"/);
    } finally {
      await browser.close();
    }
  });
});

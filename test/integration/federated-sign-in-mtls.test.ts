import * as oauth from 'oauth4webapi';
import { federatedCustomer, useMoatWithBankIdp, type BankIdp } from '../support/bank-idp.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { pushAuthorization, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * customers.source: oidc with Moat authenticating to the bank's IdP by mutual TLS (RFC 8705 §2.1,
 * tls_client_auth with a certificate from the bank's CA), at an IdP that does not offer PAR: the
 * request then travels in the browser, still with PKCE, state and nonce.
 */

let idp: BankIdp;
let h: Harness;
let tpp: RegisteredTpp;

useMoatWithBankIdp((started) => ({ idp, h, tpp } = started), { idp: { clientAuth: 'tls_client_auth', par: false }, oidc: { maxAgeSeconds: 300 } });

describe('federated sign-in with mTLS client authentication at the bank IdP (RFC 8705)', () => {
  it('signs the customer in and issues the TPP tokens for the mapped customer id', async () => {
    const { requestUri, codeVerifier } = await pushAuthorization(tpp);
    const journey = await federatedCustomer(h, tpp, idp, requestUri);
    const params = oauth.validateAuthResponse(tpp.as, tpp.client, new URL(journey.tppLocation!), oauth.skipStateCheck);
    const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
      [oauth.customFetch]: tpp.fetch,
    });
    const tokens = await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, res);
    expect(oauth.getValidatedIdTokenClaims(tokens)!.sub).toBe('cust-alice');
    // No PAR at this IdP: the authorization request went by the browser, the code was redeemed over mTLS.
    expect(idp.requests).not.toContain('POST /request');
    expect(idp.requests).toContain('POST /token');
  });

  it('puts PKCE S256, state, nonce, max_age and the claims Moat maps in the front-channel request when the IdP has no PAR', async () => {
    const { requestUri } = await pushAuthorization(tpp);
    await federatedCustomer(h, tpp, idp, requestUri, { consent: false });
    const authorize = idp.requests.filter((r) => r.startsWith('GET /auth'));
    expect(authorize.length).toBeGreaterThan(0);
    const sent = idp.authorizationRequests.at(-1)!;
    expect(sent.get('code_challenge_method')).toBe('S256');
    expect(sent.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sent.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sent.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sent.get('redirect_uri')).toBe(`${h.issuer}/federation/callback`);
    // OIDC Core §3.1.2.1: max_age is sent, so the ID token's auth_time is required and checked.
    expect(sent.get('max_age')).toBe('300');
    expect(JSON.parse(sent.get('claims')!)).toEqual({ id_token: { customer_number: { essential: true }, name: null, acr: null, amr: null, auth_time: null } });
  });

  it('refuses to start when a file customers.oidc names cannot be read, naming its key', async () => {
    const config = {
      customers: idp.moatCustomersConfig({
        clientAuth: { method: 'tls_client_auth', certFile: '/nonexistent/moat-rp.pem', keyFile: '/nonexistent/moat-rp.key' },
      }),
    };
    await expect(startMoat({ config })).rejects.toThrow('customers.oidc.clientAuth.certFile: cannot read /nonexistent/moat-rp.pem (ENOENT)');
  });
});

import { describe, expect, it } from '@jest/globals';
import {
  accountAccessReauthDue,
  acrRequestOf,
  AuthenticationRequirementsUnmet,
  requiredAuthentication,
  shortfall,
} from '../../src/sca/authentication-policy.ts';
import { ACR_CA, ACR_SCA, completedAuthentication, passwordFactor, totpFactor } from '../../src/sca/authentication.ts';
import { paymentLinkOf } from '../../src/sca/dynamic-linking.ts';

const paymentDetail = {
  type: 'payment_initiation' as const,
  instructedAmount: { amount: '10.50', currency: 'GBP' },
  creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber' as const, identification: '11223321325698' },
  creditorName: 'ACME Inc',
};
const strong = (at: Date, link?: ReturnType<typeof paymentLinkOf>) =>
  completedAuthentication({
    customerId: 'cust-alice',
    factors: [passwordFactor(), totpFactor()],
    authTime: at,
    ...(link === undefined ? {} : { link }),
  });

describe('when SCA is needed (RTS on SCA Art. 4, 5, 10a)', () => {
  it('asks a payment for a fresh SCA linked to its values', () => {
    const req = requiredAuthentication({ detail: paymentDetail, consentId: 'pdc-1', scope: 'openid payments' });
    expect(req).toEqual({ acr: ACR_SCA, fresh: true, reasons: ['payment'], link: paymentLinkOf('pdc-1', paymentDetail) });
  });

  it('asks account access for SCA', () => {
    expect(requiredAuthentication({ scope: 'openid accounts' })).toMatchObject({ acr: ACR_SCA, fresh: false, reasons: ['account_access'] });
    expect(requiredAuthentication({ detail: { type: 'account_information' }, scope: 'openid' }).acr).toBe(ACR_SCA);
  });

  it("lets a sign-in for the customer's identity alone use customer authentication", () => {
    expect(requiredAuthentication({ scope: 'openid profile' })).toEqual({ acr: ACR_CA, fresh: false, reasons: [] });
  });

  it('steps up when the TPP asks for SCA with acr_values or an essential acr claim (OIDC Core §3.1.2.1, §5.5.1.1)', () => {
    expect(requiredAuthentication({ scope: 'openid', acrRequest: acrRequestOf({ acr_values: ACR_SCA })! }).reasons).toEqual(['requested_by_client']);
    const claims = JSON.stringify({ id_token: { acr: { essential: true, values: [ACR_SCA] } } });
    expect(requiredAuthentication({ scope: 'openid', acrRequest: acrRequestOf({ claims })! }).acr).toBe(ACR_SCA);
  });

  it('answers an essential acr it cannot meet with unmet_authentication_requirements', () => {
    const claims = { id_token: { acr: { essential: true, value: 'urn:example:loa:4' } } };
    expect(() => requiredAuthentication({ scope: 'openid', acrRequest: acrRequestOf({ claims })! })).toThrow(AuthenticationRequirementsUnmet);
  });

  it('treats an unknown voluntary acr_values as a wish, not a refusal', () => {
    expect(requiredAuthentication({ scope: 'openid', acrRequest: acrRequestOf({ acr_values: 'urn:example:other' })! }).acr).toBe(ACR_CA);
  });

  it('asks for a fresh SCA when threat detection stepped the client up', () => {
    expect(requiredAuthentication({ scope: 'openid', threatStepUp: true })).toMatchObject({ acr: ACR_SCA, fresh: true, reasons: ['threat_step_up'] });
  });
});

describe('whether an authentication meets a requirement', () => {
  const began = new Date('2026-12-05T10:00:00Z');
  const payment = requiredAuthentication({ detail: paymentDetail, consentId: 'pdc-1', scope: 'openid' });

  it('accepts SCA performed in this interaction and linked to the payment', () => {
    expect(
      shortfall(strong(new Date('2026-12-05T10:00:30Z'), paymentLinkOf('pdc-1', paymentDetail)), payment, { freshSince: began, customerId: 'cust-alice' }),
    ).toBeUndefined();
  });

  it('refuses an authentication linked to another amount (a tampered payment)', () => {
    const other = paymentLinkOf('pdc-1', { ...paymentDetail, instructedAmount: { amount: '99.00', currency: 'GBP' } });
    expect(shortfall(strong(new Date('2026-12-05T10:00:30Z'), other), payment, { freshSince: began })).toBe('not_linked');
  });

  it("refuses a session's earlier SCA for a payment", () => {
    expect(shortfall(strong(new Date('2026-12-05T09:00:00Z'), paymentLinkOf('pdc-1', paymentDetail)), payment, { freshSince: began })).toBe('not_fresh');
  });

  it('refuses a password alone where SCA is needed', () => {
    const pwd = completedAuthentication({ customerId: 'cust-alice', factors: [passwordFactor()], authTime: began });
    expect(shortfall(pwd, requiredAuthentication({ scope: 'openid accounts' }))).toBe('not_strong');
    expect(shortfall(pwd, requiredAuthentication({ scope: 'openid' }))).toBeUndefined();
  });

  it("refuses another customer's authentication", () => {
    expect(shortfall(strong(began), requiredAuthentication({ scope: 'openid accounts' }), { customerId: 'cust-bob' })).toBe('other_customer');
  });
});

describe('account access re-authentication (RTS on SCA Art. 10a)', () => {
  it('is due only after the configured number of days', () => {
    const at = new Date('2026-01-01T00:00:00Z');
    expect(accountAccessReauthDue(at, new Date('2026-06-29T00:00:00Z'), 180)).toBe(false);
    expect(accountAccessReauthDue(at, new Date('2026-06-30T00:00:01Z'), 180)).toBe(true);
  });
});

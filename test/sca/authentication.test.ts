import { describe, expect, it } from '@jest/globals';
import {
  ACR_CA,
  ACR_SCA,
  acrOf,
  amrOf,
  authenticationFromLogin,
  authenticationFromSubmission,
  completedAuthentication,
  consentAuthentication,
  isStrong,
  loginResult,
  passkeyFactor,
  passwordFactor,
  totpFactor,
} from '../../src/sca/authentication.ts';
import { canonicalAmount, paymentLinkHash, paymentLinkOf, sameLink } from '../../src/sca/dynamic-linking.ts';

const payment = {
  instructedAmount: { amount: '10.50', currency: 'GBP' },
  creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber' as const, identification: '11223321325698' },
  creditorName: 'ACME Inc',
};

describe('SCA factors (RTS on SCA Art. 4)', () => {
  it('counts a password alone as customer authentication, not strong', () => {
    expect(isStrong([passwordFactor()])).toBe(false);
    expect(acrOf([passwordFactor()])).toBe(ACR_CA);
    expect(amrOf([passwordFactor()])).toEqual(['pwd']);
  });

  it('counts a password and a one-time code as two categories: strong, amr pwd otp mfa (RFC 8176)', () => {
    expect(isStrong([passwordFactor(), totpFactor()])).toBe(true);
    expect(acrOf([passwordFactor(), totpFactor()])).toBe(ACR_SCA);
    expect(amrOf([passwordFactor(), totpFactor()])).toEqual(['pwd', 'otp', 'mfa']);
  });

  it('does not count two factors of the same category as strong', () => {
    expect(isStrong([totpFactor(), totpFactor()])).toBe(false);
    expect(isStrong([passwordFactor(), passwordFactor()])).toBe(false);
  });

  it('counts a user-verified passkey alone as strong, and one without user verification as one factor', () => {
    expect(isStrong([passkeyFactor({ userVerified: true, deviceBound: true })])).toBe(true);
    expect(amrOf([passkeyFactor({ userVerified: true, deviceBound: true })])).toEqual(['hwk', 'user', 'mfa']);
    expect(amrOf([passkeyFactor({ userVerified: true, deviceBound: false })])).toEqual(['swk', 'user', 'mfa']);
    expect(isStrong([passkeyFactor({ userVerified: false, deviceBound: true })])).toBe(false);
  });

  it('refuses to record an authentication without any factor', () => {
    expect(() => completedAuthentication({ customerId: 'c', factors: [], authTime: new Date() })).toThrow(TypeError);
  });
});

describe('the login result handed to oidc-provider', () => {
  it('carries acr, amr and ts for the session, and the full record for the consent prompt', () => {
    const link = paymentLinkOf('pdc-1', payment);
    const auth = completedAuthentication({
      customerId: 'cust-alice',
      factors: [passwordFactor(), totpFactor()],
      authTime: new Date('2026-12-05T10:00:00Z'),
      link,
    });
    const result = loginResult(auth);
    expect(result.login).toEqual({ accountId: 'cust-alice', acr: ACR_SCA, amr: ['pwd', 'otp', 'mfa'], ts: 1796464800, remember: false });
    const back = authenticationFromSubmission(JSON.parse(JSON.stringify(result)));
    expect(back).toEqual(auth);
    expect(consentAuthentication(back!)).toEqual({ acr: ACR_SCA, amr: ['pwd', 'otp', 'mfa'], authTime: auth.authTime, link, linkHash: paymentLinkHash(link) });
  });

  it("reads an upstream identity provider's login (acr judged by the bank's mapping) as unlinked", () => {
    const upstream = authenticationFromLogin({ login: { accountId: 'cust-x', acr: ACR_SCA, amr: ['pwd', 'otp'], ts: 1796464800 } });
    expect(upstream).toEqual({
      customerId: 'cust-x',
      acr: ACR_SCA,
      amr: ['pwd', 'otp'],
      categories: ['knowledge', 'possession'],
      authTime: new Date(1796464800_000),
    });
    expect(authenticationFromLogin({ login: { accountId: 'cust-x', acr: 'urn:other' } })).toBeUndefined();
  });

  it("finds no authentication in a submission that is not Moat's", () => {
    expect(authenticationFromSubmission(undefined)).toBeUndefined();
    expect(authenticationFromSubmission({ login: { accountId: 'x' } })).toBeUndefined();
  });
});

describe('dynamic linking (RTS on SCA Art. 5)', () => {
  it('links the same payment written differently to the same hash', () => {
    const a = paymentLinkOf('pdc-1', payment);
    const b = paymentLinkOf('pdc-1', { ...payment, instructedAmount: { amount: '010.500', currency: 'GBP' } });
    expect(sameLink(a, b)).toBe(true);
    expect(paymentLinkHash(a)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it.each([
    ['the amount', { instructedAmount: { amount: '10.51', currency: 'GBP' } }],
    ['the currency', { instructedAmount: { amount: '10.50', currency: 'EUR' } }],
    ['the creditor account', { creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber' as const, identification: '11223321325699' } }],
    ['the creditor name', { creditorName: 'ACME Ltd' }],
  ])('makes a payment whose %s changed a different link', (_what, change) => {
    expect(sameLink(paymentLinkOf('pdc-1', payment), paymentLinkOf('pdc-1', { ...payment, ...change }))).toBe(false);
  });

  it('makes the same values under another consent a different link', () => {
    expect(sameLink(paymentLinkOf('pdc-1', payment), paymentLinkOf('pdc-2', payment))).toBe(false);
  });

  it('never calls a missing link the same', () => {
    expect(sameLink(undefined, paymentLinkOf('pdc-1', payment))).toBe(false);
  });

  it('writes amounts canonically', () => {
    expect(canonicalAmount('10.00')).toBe('10');
    expect(canonicalAmount('0.50')).toBe('0.5');
    expect(canonicalAmount('007')).toBe('7');
  });
});

import { AuthorizationDetailsInvalid, parseRequestedDetail } from '../../src/consents/authorization-details.ts';

/*
 * A requested detail is stored as Postgres jsonb: whatever reaches parseRequestedDetail — a PAR, the
 * consent API, a detail read back — text jsonb cannot hold is refused naming the field, as at the edge.
 */

const payment = (creditorName: string) => ({
  type: 'payment_initiation',
  instructedAmount: { amount: '10.00', currency: 'GBP' },
  creditorName,
  creditorAccount: { schemeName: 'UK.OBIE.SortCodeAccountNumber', identification: '40001712345678' },
});

describe('parseRequestedDetail', () => {
  it('accepts a payment detail of plain text', () => {
    expect(parseRequestedDetail(payment('ACME Ltd'), 'authorization_details[0]')).toEqual(expect.objectContaining({ creditorName: 'ACME Ltd' }));
  });

  it.each([
    ['a NUL character', 'ACME\u0000Ltd', 'authorization_details[0].creditorName must not contain a NUL character (U+0000)'],
    [
      'an unpaired UTF-16 surrogate',
      'ACME\ud800Ltd',
      'authorization_details[0].creditorName must not contain an unpaired UTF-16 surrogate (it is not Unicode text)',
    ],
  ])('refuses %s, naming the field', (_what, creditorName, message) => {
    expect(() => parseRequestedDetail(payment(creditorName), 'authorization_details[0]')).toThrow(new AuthorizationDetailsInvalid(message));
  });
});

import { describeDetail, formatDate, formatDateTime } from '../../src/consents/presentation.ts';

/*
 * Dates on the customer pages in the customer's locale and the bank's time zone (issue 18 points 6
 * and 8): the bank's day, not the server's, with the zone named where a time is shown.
 */

describe("dates in the customer's locale and the bank's time zone", () => {
  const lateEvening = new Date('2026-12-06T01:30:00Z');

  it("says a moment in the bank's zone, naming it", () => {
    expect(formatDateTime(lateEvening, 'pt-BR', 'America/Sao_Paulo')).toBe('5 de dezembro de 2026 às 22:30 BRT');
    expect(formatDateTime(lateEvening, 'en-GB', 'America/Sao_Paulo')).toBe('5 December 2026 at 22:30 GMT-3');
    expect(formatDateTime(new Date('2026-07-06T01:30:00Z'), 'en-GB', 'Europe/London')).toBe('6 July 2026 at 02:30 BST');
    expect(formatDateTime(lateEvening, 'en-GB')).toBe('6 December 2026 at 01:30 UTC');
  });

  it("takes the bank's day for a date, and for the dates of a consent", () => {
    expect(formatDate(lateEvening, 'pt-BR', 'America/Sao_Paulo')).toBe('5 de dezembro de 2026');
    expect(formatDate(lateEvening, 'en-GB', 'Asia/Tokyo')).toBe('6 December 2026');
    const view = describeDetail(
      { type: 'account_information', permissions: ['ReadBalances'], expirationDateTime: '2032-03-01T00:00:00Z' },
      'en-GB',
      'America/Sao_Paulo',
    );
    expect(view.until).toBe('29 February 2032');
  });
});

import { countsAsSca, federatedAuthentication } from '../../src/federation/sca-mapping.ts';
import { isStrongAuthentication } from '../../src/sca/authentication.ts';

/*
 * Which upstream logins count as strong customer authentication (RTS on SCA, Art. 4): the bank's
 * configured acr values and amr combinations (RFC 8176), and what Moat records for one that does.
 */

const mapping = {
  acrValues: ['urn:bank:loa:high'],
  amrCombinations: [
    ['pwd', 'otp'],
    ['hwk', 'user'],
  ],
};

describe('the upstream SCA mapping (RTS Art. 4)', () => {
  it('counts a configured acr as SCA, whatever the amr', () => {
    expect(countsAsSca(mapping, { acr: 'urn:bank:loa:high', amr: [] })).toBe(true);
  });

  it('counts a login whose amr contains every method of one combination', () => {
    expect(countsAsSca(mapping, { amr: ['otp', 'pwd', 'mfa'] })).toBe(true);
    expect(countsAsSca(mapping, { amr: ['hwk', 'user'] })).toBe(true);
  });

  it('does not count a password alone, half a combination, or another acr', () => {
    expect(countsAsSca(mapping, { acr: 'urn:bank:loa:low', amr: ['pwd'] })).toBe(false);
    expect(countsAsSca(mapping, { amr: ['hwk'] })).toBe(false);
    expect(countsAsSca(mapping, { amr: [] })).toBe(false);
    expect(countsAsSca({ acrValues: [], amrCombinations: [] }, { acr: 'urn:bank:loa:high', amr: ['pwd', 'otp'] })).toBe(false);
  });

  it("records an SCA login as acr urn:openbanking:psd2:sca with the IdP's amr and the categories it shows", () => {
    const auth = federatedAuthentication('cust-1', { acr: 'urn:bank:loa:high', amr: ['pwd', 'otp'], authTime: 1_800_000_000 }, new Date(0));
    expect(auth).toEqual({
      customerId: 'cust-1',
      acr: 'urn:openbanking:psd2:sca',
      amr: ['pwd', 'otp', 'mfa'],
      categories: ['knowledge', 'possession'],
      authTime: new Date(1_800_000_000_000),
    });
    expect(isStrongAuthentication(auth)).toBe(true);
  });

  it("takes the bank's word for two categories when its acr alone says SCA, and the sign-in time when it sends no auth_time", () => {
    const now = new Date('2026-12-05T08:00:00Z');
    const auth = federatedAuthentication('cust-1', { acr: 'urn:bank:loa:high', amr: [] }, now);
    expect(auth.categories).toEqual(['knowledge', 'possession']);
    expect(auth.authTime).toEqual(now);
    expect(federatedAuthentication('cust-1', { amr: ['fpt', 'swk'] }, now).categories).toEqual(['inherence', 'possession']);
  });
});

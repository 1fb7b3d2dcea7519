import { X509Certificate } from 'node:crypto';
import { createCa, issueLeaf } from '../../src/sandbox/pki.ts';
import {
  describeDifference, distinguishedNamesEqual, formatDistinguishedName, getAttribute, InvalidDistinguishedNameError,
  parseDistinguishedName, subjectOf,
} from '../../src/tls/distinguished-name.ts';

const equal = (a: string, b: string) => distinguishedNamesEqual(parseDistinguishedName(a), parseDistinguishedName(b));

describe('distinguished names (RFC 4514 strings, RFC 4517 distinguishedNameMatch)', () => {
  it('treats attribute names case-insensitively and as their OIDs', () => {
    expect(equal('CN=acme,OU=org1,O=OpenBanking,C=GB', 'cn=acme, ou=org1, o=OpenBanking, c=GB')).toBe(true);
    expect(equal('CN=acme', '2.5.4.3=acme')).toBe(true);
    expect(equal('organizationIdentifier=PSDGB-FCA-123456', '2.5.4.97=PSDGB-FCA-123456')).toBe(true);
  });

  it('compares values ignoring case and insignificant spaces', () => {
    expect(equal('CN=Acme  Fintech Ltd', 'CN=  acme fintech LTD  ')).toBe(true);
  });

  it('ignores the order of attributes inside a multi-valued RDN', () => {
    expect(equal('CN=a,OU=x+O=y', 'CN=a,O=y+OU=x')).toBe(true);
  });

  it('does not equate names whose RDNs come in another order', () => {
    expect(equal('CN=a,O=b', 'O=b,CN=a')).toBe(false);
  });

  it('does not equate different values, or a name with an extra RDN', () => {
    expect(equal('CN=a,O=b', 'CN=a,O=c')).toBe(false);
    expect(equal('CN=a,O=b', 'CN=a,O=b,C=GB')).toBe(false);
  });

  it('reads escaped special characters and UTF-8 hex pairs', () => {
    expect(parseDistinguishedName('CN=Acme\\, Inc\\+Co,O=x')[0]).toEqual([{ type: '2.5.4.3', value: 'Acme, Inc+Co' }]);
    expect(parseDistinguishedName('CN=\\C3\\A9t\\C3\\A9')[0]).toEqual([{ type: '2.5.4.3', value: 'été' }]);
  });

  it.each([
    ['', /empty/],
    ['garbage', /type=value/],
    ['CN=x,', /ends with ","/],
    ['CN=x+', /ends with "\+"/],
    ['CN=x,,O=y', /not an attribute type/],
    ['foo=bar', /unknown attribute type "foo"/],
    ['CN=', /empty value/],
    ['CN=a"b', /must be escaped/],
    ['CN=#04024869', /hex-encoded/],
  ])('refuses %j with a message that says why', (dn, message) => {
    expect(() => parseDistinguishedName(dn)).toThrow(InvalidDistinguishedNameError);
    expect(() => parseDistinguishedName(dn)).toThrow(message);
  });

  it('reads a certificate subject from its DER and matches the TPP-written string', async () => {
    const now = new Date();
    const ca = await createCa([{ C: ['GB'] }, { CN: ['Test CA'] }], now);
    const leaf = await issueLeaf(ca, { subject: [{ C: ['GB'] }, { O: ['Acme, Inc'] }, { OU: ['org-1'] }, { CN: ['sw-1'] }], usage: 'clientAuth', now });
    const subject = subjectOf(new X509Certificate(leaf.certPem));
    expect(formatDistinguishedName(subject)).toBe('CN=sw-1, OU=org-1, O=Acme\\, Inc, C=GB');
    expect(distinguishedNamesEqual(subject, parseDistinguishedName('cn=SW-1,ou=org-1,o=Acme\\, Inc,c=gb'))).toBe(true);
    expect(getAttribute(subject, 'OU')).toBe('org-1');
    expect(getAttribute(subject, '2.5.4.97')).toBeUndefined();
  });

  it('names the first differing attribute', () => {
    expect(describeDifference(parseDistinguishedName('CN=a,OU=org-1'), parseDistinguishedName('CN=a,OU=org-2')))
      .toBe('expected OU=org-1, the certificate has OU=org-2');
    expect(describeDifference(parseDistinguishedName('CN=a'), parseDistinguishedName('cn=A'))).toBeUndefined();
  });
});

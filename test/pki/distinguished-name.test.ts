import * as x509 from '../../src/pki/x509.ts';
import {
  describeDifference,
  distinguishedNamesEqual,
  formatDistinguishedName,
  getAttribute,
  InvalidDistinguishedNameError,
  issuerOf,
  parseDistinguishedName,
  resolveAttributeType,
  subjectOf,
  toX509Name,
} from '../../src/pki/distinguished-name.ts';
import { createTestCa, issueLeaf, type JsonName, type TestCa } from '../support/pki.ts';

const equal = (a: string, b: string) => distinguishedNamesEqual(parseDistinguishedName(a), parseDistinguishedName(b));

describe('RFC 4514 distinguished name strings', () => {
  it('reads RDNs most specific first, attribute types as OIDs', () => {
    expect(parseDistinguishedName('CN=abc,OU=org1,O=OpenBanking,C=GB')).toEqual([
      [{ type: '2.5.4.3', value: 'abc' }],
      [{ type: '2.5.4.11', value: 'org1' }],
      [{ type: '2.5.4.10', value: 'OpenBanking' }],
      [{ type: '2.5.4.6', value: 'GB' }],
    ]);
  });

  it('reads a multi-valued RDN', () => {
    expect(parseDistinguishedName('CN=a+UID=42,DC=example')).toEqual([
      [
        { type: '2.5.4.3', value: 'a' },
        { type: '0.9.2342.19200300.100.1.1', value: '42' },
      ],
      [{ type: '0.9.2342.19200300.100.1.25', value: 'example' }],
    ]);
  });

  it('reads escaped special characters, and a run of hex pairs as UTF-8', () => {
    expect(parseDistinguishedName('CN=Acme\\, Inc\\+Co\\;\\<\\>\\"\\\\,O=x')[0]).toEqual([{ type: '2.5.4.3', value: 'Acme, Inc+Co;<>"\\' }]);
    // RFC 4514 §4 examples.
    expect(parseDistinguishedName('CN=Lu\\C4\\8Di\\C4\\87')[0]).toEqual([{ type: '2.5.4.3', value: 'Lučić' }]);
    expect(parseDistinguishedName('CN=James \\"Jim\\" Smith\\, III,DC=example,DC=net')[0]).toEqual([{ type: '2.5.4.3', value: 'James "Jim" Smith, III' }]);
    expect(parseDistinguishedName('CN=Before\\0dAfter,DC=example')[0]).toEqual([{ type: '2.5.4.3', value: 'Before\rAfter' }]);
  });

  it('keeps escaped leading and trailing spaces and drops unescaped ones', () => {
    expect(parseDistinguishedName('CN=\\ padded\\ ')[0]).toEqual([{ type: '2.5.4.3', value: ' padded ' }]);
    expect(parseDistinguishedName('CN = spaced  , O = x')).toEqual([[{ type: '2.5.4.3', value: 'spaced' }], [{ type: '2.5.4.10', value: 'x' }]]);
  });

  it('allows an unescaped "=" and "#" inside a value', () => {
    expect(parseDistinguishedName('CN=a=b#c')[0]).toEqual([{ type: '2.5.4.3', value: 'a=b#c' }]);
  });

  it('decodes a #hex value: a string type becomes text, anything else stays its encoding', () => {
    // UTF8String "abc" and PrintableString "GB".
    expect(parseDistinguishedName('CN=#0c03616263,C=#13024742')).toEqual([[{ type: '2.5.4.3', value: 'abc' }], [{ type: '2.5.4.6', value: 'GB' }]]);
    // RFC 4514 §4: an OCTET STRING has no string form.
    expect(parseDistinguishedName('1.3.6.1.4.1.1466.0=#04024869')).toEqual([[{ type: '1.3.6.1.4.1.1466.0', value: '#04024869', binary: true }]]);
  });

  it.each([
    ['', /empty/],
    ['   ', /empty/],
    ['garbage', /expected "type=value" at position 0/],
    ['CN=x,', /ends with ","/],
    ['CN=x+', /ends with "\+"/],
    ['CN=x,,O=y', /empty RDN at position 5/],
    [',CN=x', /empty RDN at position 0/],
    ['foo=bar', /unknown attribute type "foo"/],
    ['01.2=x', /"01.2" is not an attribute type/],
    ['CN=', /empty value for CN/],
    ['CN=a"b', /'"' must be escaped/],
    ['CN=a;b', /';' must be escaped/],
    ['CN=a<b', /'<' must be escaped/],
    ['CN="quoted"', /must be escaped/],
    ['CN=a\\qb', /invalid escape "\\q"/],
    ['CN=\\C3', /not UTF-8/],
    ['CN=#0c0361', /not a BER-encoded value/],
    ['CN=#0c0361626300', /not a single DER-encoded value/],
    ['CN=#0c036', /hex-encoded/],
    ['CN=#zz', /hex-encoded/],
    ['CN=#0c03616263 x', /expected "," or "\+"/],
  ])('refuses %j with a message that says why', (dn, message) => {
    expect(() => parseDistinguishedName(dn)).toThrow(InvalidDistinguishedNameError);
    expect(() => parseDistinguishedName(dn)).toThrow(message);
  });

  it('knows every attribute name @peculiar/x509 knows, with the same OID', () => {
    const library = new x509.Name([]);
    for (const name of ['CN', 'L', 'ST', 'O', 'OU', 'C', 'DC', 'E', 'G', 'I', 'SN', 'T']) {
      expect([name, resolveAttributeType(name)]).toEqual([name, (library as unknown as { getName(n: string): string }).getName(name)]);
    }
  });

  it('formats a DN back to a string that reads the same', () => {
    const dn = parseDistinguishedName('cn=\\#1 \\, Acme\\+Co\\ ,ou=x+o=y,2.5.4.97=PSDGB-FCA-123456,1.2.3.4=#04024869');
    const text = formatDistinguishedName(dn);
    expect(text).toBe('CN=\\#1 \\, Acme\\+Co\\ , OU=x+O=y, organizationIdentifier=PSDGB-FCA-123456, 1.2.3.4=#04024869');
    expect(parseDistinguishedName(text)).toEqual(dn);
    expect(formatDistinguishedName(dn, { separator: ',' })).toBe('CN=\\#1 \\, Acme\\+Co\\ ,OU=x+O=y,organizationIdentifier=PSDGB-FCA-123456,1.2.3.4=#04024869');
    expect(formatDistinguishedName([[{ type: '2.5.4.3', value: 'line\nbreak' }]])).toBe('CN=line\\0Abreak');
  });

  it('finds an attribute by name or OID, most specific first', () => {
    const dn = parseDistinguishedName('CN=sw-1,OU=org-1,OU=parent,organizationIdentifier=PSDGB-FCA-1,C=GB');
    expect(getAttribute(dn, 'OU')).toBe('org-1');
    expect(getAttribute(dn, 'organizationalUnitName')).toBe('org-1');
    expect(getAttribute(dn, '2.5.4.97')).toBe('PSDGB-FCA-1');
    expect(getAttribute(dn, 'serialNumber')).toBeUndefined();
    expect(() => getAttribute(dn, 'orgUnit')).toThrow('unknown attribute type "orgUnit"');
  });
});

describe('distinguishedNameMatch (RFC 4517 §4.2.15, RFC 4518 preparation)', () => {
  it('compares attribute types by OID, whatever name they are written with', () => {
    expect(equal('CN=acme,OU=org1,O=OpenBanking,C=GB', 'cn=acme,ou=org1,o=OpenBanking,c=GB')).toBe(true);
    expect(equal('CN=acme', '2.5.4.3=acme')).toBe(true);
    expect(equal('commonName=acme,countryName=GB', 'CN=acme,C=GB')).toBe(true);
    expect(equal('organizationIdentifier=PSDGB-FCA-123456', '2.5.4.97=PSDGB-FCA-123456')).toBe(true);
    expect(equal('emailAddress=a@example.com', 'E=a@example.com')).toBe(true);
    expect(
      equal(
        'serialNumber=123,businessCategory=Private Organization,jurisdictionC=GB,street=1 Road',
        '2.5.4.5=123,2.5.4.15=Private Organization,1.3.6.1.4.1.311.60.2.1.3=GB,2.5.4.9=1 Road',
      ),
    ).toBe(true);
    expect(equal('DC=example,UID=jd', 'domainComponent=example,userId=jd')).toBe(true);
  });

  it('compares values ignoring case and insignificant spaces', () => {
    expect(equal('CN=Acme  Fintech Ltd', 'CN=  acme fintech LTD  ')).toBe(true);
    expect(equal('CN=Acme\\ ', 'CN=acme')).toBe(true);
    expect(equal('CN=Acme\\09Fintech', 'CN=acme fintech')).toBe(true);
  });

  it('compares values after Unicode normalisation', () => {
    // U+00E9 against e + U+0301 (NFKC makes them one), and a soft hyphen that maps to nothing.
    expect(equal('CN=caf\\C3\\A9', 'CN=cafe\\CC\\81')).toBe(true);
    expect(equal('CN=ac\\C2\\ADme', 'CN=acme')).toBe(true);
  });

  it('compares a hex-encoded string value as its text', () => {
    expect(equal('CN=#0c03616263', 'CN=ABC')).toBe(true);
  });

  it('ignores the order of attributes inside a multi-valued RDN', () => {
    expect(equal('CN=a,OU=x+O=y', 'CN=a,O=y+OU=x')).toBe(true);
  });

  it('does not equate names whose RDNs come in another order', () => {
    expect(equal('CN=a,O=b', 'O=b,CN=a')).toBe(false);
  });

  it('does not equate different values, types, or a name with an extra RDN', () => {
    expect(equal('CN=a,O=b', 'CN=a,O=c')).toBe(false);
    expect(equal('CN=a,O=b', 'CN=a,OU=b')).toBe(false);
    expect(equal('CN=a,O=b', 'CN=a,O=b,C=GB')).toBe(false);
    expect(equal('CN=a+O=b', 'CN=a,O=b')).toBe(false);
    expect(equal('CN=a b', 'CN=ab')).toBe(false);
  });

  it('does not equate a string with a non-string value of the same bytes', () => {
    expect(equal('1.2.3.4=#04024869', '1.2.3.4=\\#04024869')).toBe(false);
  });

  it('names the first differing attribute', () => {
    expect(describeDifference(parseDistinguishedName('CN=a,OU=org-1,C=GB'), parseDistinguishedName('CN=a,OU=org-2,C=GB'))).toBe(
      'expected OU=org-1, the certificate has OU=org-2',
    );
    expect(describeDifference(parseDistinguishedName('CN=a,OU=x+O=y'), parseDistinguishedName('CN=a,O=y+OU=z'))).toBe(
      'expected OU=x, the certificate has OU=z',
    );
    expect(describeDifference(parseDistinguishedName('CN=a'), parseDistinguishedName('CN=a,C=GB'))).toBe('the certificate has an extra RDN C=GB');
    expect(describeDifference(parseDistinguishedName('CN=a,C=GB'), parseDistinguishedName('CN=a'))).toBe('the certificate lacks C=GB');
    expect(describeDifference(parseDistinguishedName('CN=a'), parseDistinguishedName('cn=A'))).toBeUndefined();
  });
});

describe('distinguished names of real certificates', () => {
  let ca: TestCa;
  const subjectJson: JsonName = [{ C: ['GB'] }, { O: ['OpenBanking'] }, { OU: ['org1'] }, { CN: ['abc'] }];

  beforeAll(async () => {
    ca = await createTestCa([{ C: ['GB'] }, { O: ['Test PKI'] }, { CN: ['Test Issuing CA'] }]);
  });

  it('reads the subject from the DER and matches the string a TPP registers (reverse of the ASN.1 order)', async () => {
    const leaf = await issueLeaf(ca, { subject: subjectJson });
    const subject = subjectOf(leaf.certificate);
    expect(formatDistinguishedName(subject)).toBe('CN=abc, OU=org1, O=OpenBanking, C=GB');
    expect(distinguishedNamesEqual(subject, parseDistinguishedName('CN=abc,OU=org1,O=OpenBanking,C=GB'))).toBe(true);
    expect(distinguishedNamesEqual(subject, parseDistinguishedName('cn=ABC, ou=org1, o=openbanking, c=gb'))).toBe(true);
    expect(distinguishedNamesEqual(subject, parseDistinguishedName('C=GB,O=OpenBanking,OU=org1,CN=abc'))).toBe(false);
    expect(formatDistinguishedName(issuerOf(leaf.certificate))).toBe('CN=Test Issuing CA, O=Test PKI, C=GB');
  });

  it('matches a UTF8String subject value against a PrintableString one, and escapes from the string', async () => {
    const leaf = await issueLeaf(ca, { subject: [{ C: ['GB'] }, { O: ['Acme, Inc'] }, { CN: ['Zoë+1'] }] });
    const subject = subjectOf(leaf.certificate);
    expect(formatDistinguishedName(subject)).toBe('CN=Zoë\\+1, O=Acme\\, Inc, C=GB');
    expect(distinguishedNamesEqual(subject, parseDistinguishedName('CN=zo\\C3\\AB\\+1,O=acme\\, inc,C=#13024742'))).toBe(true);
  });

  it('reads a multi-valued RDN and organizationIdentifier from a certificate', async () => {
    const leaf = await issueLeaf(ca, { subject: [{ C: ['GB'] }, { '2.5.4.97': ['PSDGB-FCA-123456'] }, { CN: ['sw-1'], OU: ['org-1'] }] });
    const subject = subjectOf(leaf.certificate);
    expect(getAttribute(subject, 'organizationIdentifier')).toBe('PSDGB-FCA-123456');
    expect(distinguishedNamesEqual(subject, parseDistinguishedName('OU=org-1+CN=sw-1,2.5.4.97=psdgb-fca-123456,C=GB'))).toBe(true);
  });

  it('builds an @peculiar/x509 Name in ASN.1 order from an RFC 4514 string', async () => {
    const dn = parseDistinguishedName('CN=abc,OU=org1,O=Zoë Ltd,emailAddress=ops@example.com,C=GB');
    const leaf = await issueLeaf(ca, { subject: toX509Name(dn) });
    expect(distinguishedNamesEqual(subjectOf(leaf.certificate), dn)).toBe(true);
    expect(leaf.certificate.subject).toBe('C=GB\nemailAddress=ops@example.com\nO=Zoë Ltd\nOU=org1\nCN=abc');
  });
});

import {
  ALL_FORWARDED_CERT_HEADERS,
  MalformedForwardedCertificateError,
  parseXfcc,
  readForwardedCertificate,
  type ForwardedCertificate,
} from '../../src/pki/forwarded-certificate.ts';
import { byteSequence, createIntermediateCa, createTestCa, issueLeaf, type TestCa, type TestCertificate } from '../support/pki.ts';

let root: TestCa;
let intermediate: TestCa;
let leaf: TestCertificate;

beforeAll(async () => {
  root = await createTestCa([{ CN: ['Root'] }]);
  intermediate = await createIntermediateCa(root, [{ CN: ['Issuing CA'] }]);
  leaf = await issueLeaf(intermediate, { subject: [{ OU: ['org-1'] }, { CN: ['sw-1'] }] });
});

/** The certificates read, as subjects: leaf first, then the chain. */
const subjects = (forwarded: ForwardedCertificate | undefined) =>
  forwarded === undefined ? undefined : [forwarded.certificate, ...forwarded.chain].map((c) => c.subject.replace(/\n/g, ','));

const malformed = (format: Parameters<typeof readForwardedCertificate>[0], headers: Parameters<typeof readForwardedCertificate>[1]) => {
  try {
    readForwardedCertificate(format, headers);
  } catch (err) {
    expect(err).toBeInstanceOf(MalformedForwardedCertificateError);
    return (err as Error).message;
  }
  throw new Error('expected the header to be refused');
};

describe('RFC 9440 Client-Cert and Client-Cert-Chain', () => {
  it('reads the certificate from a Byte Sequence of its DER', () => {
    expect(subjects(readForwardedCertificate('rfc9440', { 'client-cert': byteSequence(leaf) }))).toEqual(['OU=org-1,CN=sw-1']);
  });

  it('reads the chain from a List of Byte Sequences, also when split over several lines', () => {
    const expected = ['OU=org-1,CN=sw-1', 'CN=Issuing CA', 'CN=Root'];
    expect(
      subjects(
        readForwardedCertificate('rfc9440', { 'client-cert': byteSequence(leaf), 'client-cert-chain': `${byteSequence(intermediate)}, ${byteSequence(root)}` }),
      ),
    ).toEqual(expected);
    expect(
      subjects(
        readForwardedCertificate('rfc9440', { 'client-cert': [byteSequence(leaf)], 'client-cert-chain': [byteSequence(intermediate), byteSequence(root)] }),
      ),
    ).toEqual(expected);
  });

  it('finds no certificate when the header is absent or empty', () => {
    expect(readForwardedCertificate('rfc9440', {})).toBeUndefined();
    expect(readForwardedCertificate('rfc9440', { 'client-cert': '' })).toBeUndefined();
  });

  it.each([
    ['a token', { 'client-cert': 'abc' }, 'Client-Cert must be a Byte Sequence (:base64:) (RFC 9440 §2.2)'],
    ['PEM text', { 'client-cert': '-----BEGIN CERTIFICATE-----' }, 'Client-Cert is not a Structured Field Byte Sequence (RFC 9440 §2.2)'],
    ['bytes that are not a certificate', { 'client-cert': ':AAEC:' }, 'Client-Cert is not a DER certificate'],
    ['two Client-Cert lines', { 'client-cert': [':AAEC:', ':AAEC:'] }, 'client-cert appears more than once'],
  ])('refuses %s', (_what, headers, message) => {
    expect(malformed('rfc9440', headers)).toBe(message);
  });

  it('refuses a chain member that is not a Byte Sequence, or a chain too long', () => {
    expect(malformed('rfc9440', { 'client-cert': byteSequence(leaf), 'client-cert-chain': `${byteSequence(intermediate)}, "x"` })).toBe(
      'Client-Cert-Chain member 2 is not a Byte Sequence (RFC 9440 §2.3)',
    );
    expect(malformed('rfc9440', { 'client-cert': byteSequence(leaf), 'client-cert-chain': `(${byteSequence(intermediate)})` })).toBe(
      'Client-Cert-Chain member 1 is not a Byte Sequence (RFC 9440 §2.3)',
    );
    expect(malformed('rfc9440', { 'client-cert': byteSequence(leaf), 'client-cert-chain': Array(9).fill(byteSequence(intermediate)).join(', ') })).toBe(
      'Client-Cert-Chain holds more than 8 certificates',
    );
  });
});

describe('nginx X-SSL-Client-Cert ($ssl_client_escaped_cert)', () => {
  it('reads the URL-encoded PEM', () => {
    expect(subjects(readForwardedCertificate('nginx', { 'x-ssl-client-cert': encodeURIComponent(leaf.certPem) }))).toEqual(['OU=org-1,CN=sw-1']);
  });

  it('reads further PEM certificates as the chain', () => {
    expect(subjects(readForwardedCertificate('nginx', { 'x-ssl-client-cert': encodeURIComponent(leaf.certPem + intermediate.certPem) }))).toEqual([
      'OU=org-1,CN=sw-1',
      'CN=Issuing CA',
    ]);
  });

  it('finds no certificate when nginx saw none (empty variable)', () => {
    expect(readForwardedCertificate('nginx', { 'x-ssl-client-cert': '' })).toBeUndefined();
  });

  it.each([
    ['bad percent-encoding', '%E0%A4%A', 'X-SSL-Client-Cert is not URL-encoded'],
    ['no PEM', 'hello', 'X-SSL-Client-Cert holds something other than PEM certificates'],
    ['text around the PEM', () => encodeURIComponent(`${leaf.certPem}extra`), 'X-SSL-Client-Cert holds something other than PEM certificates'],
    [
      'a corrupt PEM body',
      encodeURIComponent('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
      'X-SSL-Client-Cert holds an unreadable certificate',
    ],
  ])('refuses %s', (_what, value, message) => {
    expect(malformed('nginx', { 'x-ssl-client-cert': typeof value === 'function' ? value() : value })).toBe(message);
  });
});

describe('Envoy X-Forwarded-Client-Cert', () => {
  const cert = (c: TestCertificate) => encodeURIComponent(c.certPem);

  it('splits elements and pairs, honouring quotes and escaped quotes', () => {
    expect(parseXfcc('By=spiffe://a;Hash=01ab,By=spiffe://gw;Subject="CN=sw-1,OU=org\\"1\\";x=y";URI=spiffe://c;uri=spiffe://d')).toEqual([
      new Map([
        ['by', ['spiffe://a']],
        ['hash', ['01ab']],
      ]),
      new Map([
        ['by', ['spiffe://gw']],
        ['subject', ['CN=sw-1,OU=org"1";x=y']],
        ['uri', ['spiffe://c', 'spiffe://d']],
      ]),
    ]);
  });

  it('keeps backslashes that escape nothing but a quote, and allows spaces around separators', () => {
    expect(parseXfcc('Subject="CN=a\\,b" ; Hash=x , By=y')).toEqual([
      new Map([
        ['subject', ['CN=a\\,b']],
        ['hash', ['x']],
      ]),
      new Map([['by', ['y']]]),
    ]);
  });

  it.each([
    ['', 'X-Forwarded-Client-Cert: empty value at position 0'],
    ['By', 'X-Forwarded-Client-Cert: expected "=" after By at position 2'],
    ['=x', 'X-Forwarded-Client-Cert: expected a key at position 0'],
    ['By="open', 'X-Forwarded-Client-Cert: unterminated quoted value at position 8'],
    ['By="a"b', 'X-Forwarded-Client-Cert: expected ";" or "," at position 6'],
    ['By=a=b', `X-Forwarded-Client-Cert: '=' in an unquoted value at position 4`],
    ['By=a"b"', `X-Forwarded-Client-Cert: '"' in an unquoted value at position 4`],
    ['By=a,', 'X-Forwarded-Client-Cert: value ends with "," at position 5'],
    ['By=a;', 'X-Forwarded-Client-Cert: value ends with ";" at position 5'],
    ['By=a,,Hash=b', 'X-Forwarded-Client-Cert: expected a key at position 5'],
    ['By-x=a', 'X-Forwarded-Client-Cert: expected "=" after By at position 2'],
  ])('refuses %j', (value, message) => {
    expect(() => parseXfcc(value)).toThrow(new MalformedForwardedCertificateError(message));
  });

  it('reads Cert and Chain of the element the nearest proxy added (the last)', () => {
    const header = `By=spiffe://edge;Cert="${cert(root)}",By=spiffe://gw;Hash=abc;Cert="${cert(leaf)}";Chain="${cert(leaf)}${cert(intermediate)}"`;
    expect(subjects(readForwardedCertificate('envoy-xfcc', { 'x-forwarded-client-cert': header }))).toEqual(['OU=org-1,CN=sw-1', 'CN=Issuing CA']);
  });

  it("treats XFCC header lines as one list, the last line's last element being the nearest proxy's", () => {
    const lines = [`By=spiffe://edge;Cert="${cert(root)}"`, `By=spiffe://gw;Cert="${cert(leaf)}"`];
    expect(subjects(readForwardedCertificate('envoy-xfcc', { 'x-forwarded-client-cert': lines }))).toEqual(['OU=org-1,CN=sw-1']);
  });

  it('never takes a certificate from an element further away (one a client could have written)', () => {
    const header = `By=spiffe://client;Cert="${cert(leaf)}",By=spiffe://gw;Hash=abc`;
    expect(readForwardedCertificate('envoy-xfcc', { 'x-forwarded-client-cert': header })).toBeUndefined();
  });

  it('accepts an unquoted Cert, as URL-encoding leaves nothing to quote', () => {
    expect(subjects(readForwardedCertificate('envoy-xfcc', { 'x-forwarded-client-cert': `Hash=abc;Cert=${cert(leaf)}` }))).toEqual(['OU=org-1,CN=sw-1']);
  });

  it('refuses two Cert keys in one element, or two certificates in Cert', () => {
    expect(malformed('envoy-xfcc', { 'x-forwarded-client-cert': `Cert="${cert(leaf)}";Cert="${cert(leaf)}"` })).toBe(
      'X-Forwarded-Client-Cert: cert appears more than once in an element',
    );
    expect(malformed('envoy-xfcc', { 'x-forwarded-client-cert': `Cert="${cert(leaf)}${cert(intermediate)}"` })).toBe(
      'X-Forwarded-Client-Cert Cert holds more than one certificate',
    );
  });
});

describe('headers that can carry a forwarded certificate', () => {
  it("are every format's header and the RFC 9440 chain header", () => {
    expect(ALL_FORWARDED_CERT_HEADERS).toEqual(['client-cert', 'x-ssl-client-cert', 'x-forwarded-client-cert', 'client-cert-chain']);
  });
});

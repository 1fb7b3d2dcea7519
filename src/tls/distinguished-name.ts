import type { X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, Name as AsnName } from '@peculiar/asn1-x509';

/*
 * Distinguished names compared as names, not strings (RFC 4517 §4.2.15 distinguishedNameMatch):
 * `CN=Acme, O=OpenBanking` and `cn=acme,o=openbanking` are the same subject. Certificate subjects
 * come from the DER through @peculiar/x509; registered DNs arrive as RFC 4514 strings.
 *
 * The RFC 4514 string reader below is deliberate: the string parsers in the X.509 libraries we can
 * use are regex-based and lenient (they accept `garbage` as an empty name and lowercase attribute
 * types fail), which is the wrong property for an authentication decision. It reads only the
 * grammar of RFC 4514 §3 and refuses anything else.
 */

export interface Attribute {
  /** Dotted OID of the attribute type. */
  type: string;
  value: string;
}

/** RDNs in RFC 4514 order (most specific first, the reverse of the ASN.1 sequence). */
export type DistinguishedName = Attribute[][];

export class InvalidDistinguishedNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidDistinguishedNameError';
  }
}

/** Short names (RFC 4514 §3, RFC 4519, ETSI EN 319 412-1 and the CA/B Forum EV names) to OIDs. */
const NAME_TO_OID: Record<string, string> = {
  cn: '2.5.4.3', commonname: '2.5.4.3',
  sn: '2.5.4.4', surname: '2.5.4.4',
  serialnumber: '2.5.4.5',
  c: '2.5.4.6', countryname: '2.5.4.6',
  l: '2.5.4.7', localityname: '2.5.4.7',
  st: '2.5.4.8', stateorprovincename: '2.5.4.8',
  street: '2.5.4.9', streetaddress: '2.5.4.9',
  o: '2.5.4.10', organizationname: '2.5.4.10',
  ou: '2.5.4.11', organizationalunitname: '2.5.4.11',
  title: '2.5.4.12',
  businesscategory: '2.5.4.15',
  postalcode: '2.5.4.17',
  givenname: '2.5.4.42',
  organizationidentifier: '2.5.4.97',
  dc: '0.9.2342.19200300.100.1.25', domaincomponent: '0.9.2342.19200300.100.1.25',
  uid: '0.9.2342.19200300.100.1.1', userid: '0.9.2342.19200300.100.1.1',
  e: '1.2.840.113549.1.9.1', emailaddress: '1.2.840.113549.1.9.1',
  jurisdictionc: '1.3.6.1.4.1.311.60.2.1.3', jurisdictioncountryname: '1.3.6.1.4.1.311.60.2.1.3',
  jurisdictionst: '1.3.6.1.4.1.311.60.2.1.2', jurisdictionl: '1.3.6.1.4.1.311.60.2.1.1',
};

/** The short name a DN is written with, per OID (the first name listed above). */
const OID_TO_NAME: Record<string, string> = {
  '2.5.4.3': 'CN', '2.5.4.4': 'SN', '2.5.4.5': 'serialNumber', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.12': 'title', '2.5.4.15': 'businessCategory',
  '2.5.4.17': 'postalCode', '2.5.4.42': 'GN', '2.5.4.97': 'organizationIdentifier',
  '0.9.2342.19200300.100.1.25': 'DC', '0.9.2342.19200300.100.1.1': 'UID', '1.2.840.113549.1.9.1': 'emailAddress',
  '1.3.6.1.4.1.311.60.2.1.3': 'jurisdictionC', '1.3.6.1.4.1.311.60.2.1.2': 'jurisdictionST', '1.3.6.1.4.1.311.60.2.1.1': 'jurisdictionL',
};

const OID = /^\d+(\.\d+)+$/;
const KEYWORD = /^[A-Za-z][A-Za-z0-9-]*$/;

function oidOf(type: string): string {
  const trimmed = type.trim();
  if (OID.test(trimmed)) return trimmed;
  if (!KEYWORD.test(trimmed)) throw new InvalidDistinguishedNameError(`"${trimmed}" is not an attribute type`);
  const oid = NAME_TO_OID[trimmed.toLowerCase()];
  if (oid === undefined) throw new InvalidDistinguishedNameError(`unknown attribute type "${trimmed}" (write it as a dotted OID)`);
  return oid;
}

/** Reads an RFC 4514 string (`CN=abc,OU=org1+O=OpenBanking,C=GB`). */
export function parseDistinguishedName(dn: string): DistinguishedName {
  if (dn.trim() === '') throw new InvalidDistinguishedNameError('the distinguished name is empty');
  const rdns: DistinguishedName = [];
  let rdn: Attribute[] = [];
  let i = 0;
  while (i < dn.length) {
    const eq = dn.indexOf('=', i);
    if (eq === -1) throw new InvalidDistinguishedNameError(`expected "type=value" at position ${i}`);
    const type = oidOf(dn.slice(i, eq));
    i = eq + 1;
    while (dn[i] === ' ') i += 1;
    if (dn[i] === '#') throw new InvalidDistinguishedNameError('hex-encoded (#) attribute values are not supported; write the value as a string');
    let value = '';
    let trailingSpaces = 0;
    for (; i < dn.length; i += 1) {
      const ch = dn[i]!;
      if (ch === ',' || ch === '+') break;
      if (ch === '\\') {
        const next = dn[i + 1];
        if (next !== undefined && /[0-9a-fA-F]/.test(next) && /[0-9a-fA-F]/.test(dn[i + 2] ?? '')) {
          // RFC 4514 §2.4 hexpair: UTF-8 bytes, possibly several in a row.
          const bytes: number[] = [];
          while (dn[i] === '\\' && /^[0-9a-fA-F]{2}$/.test(dn.slice(i + 1, i + 3))) {
            bytes.push(parseInt(dn.slice(i + 1, i + 3), 16));
            i += 3;
          }
          i -= 1;
          value += Buffer.from(bytes).toString('utf8');
        } else if (next !== undefined && ' "#+,;<=>\\'.includes(next)) {
          value += next;
          i += 1;
        } else {
          throw new InvalidDistinguishedNameError(`invalid escape "\\${next ?? ''}" at position ${i}`);
        }
        trailingSpaces = 0;
        continue;
      }
      if (ch === '"' || ch === ';' || ch === '<' || ch === '>' || ch === '=') {
        throw new InvalidDistinguishedNameError(`"${ch}" must be escaped in an attribute value (position ${i})`);
      }
      value += ch;
      trailingSpaces = ch === ' ' ? trailingSpaces + 1 : 0;
    }
    // Unescaped trailing spaces are not part of the value (RFC 4514 §2.4 escapes the ones that are).
    if (trailingSpaces > 0) value = value.slice(0, -trailingSpaces);
    if (value === '') throw new InvalidDistinguishedNameError(`empty value for ${OID_TO_NAME[type] ?? type}`);
    rdn.push({ type, value });
    if (dn[i] === '+') {
      i += 1;
    } else {
      rdns.push(rdn);
      rdn = [];
      if (dn[i] === ',') {
        i += 1;
        if (i >= dn.length) throw new InvalidDistinguishedNameError('the distinguished name ends with ","');
      }
    }
    while (dn[i] === ' ') i += 1;
  }
  if (rdn.length > 0) throw new InvalidDistinguishedNameError('the distinguished name ends with "+"');
  return rdns;
}

function fromAsn(name: AsnName): DistinguishedName {
  // ASN.1 order is country first; RFC 4514 writes the sequence reversed.
  return name.map((rdn) => rdn.map((atv) => ({ type: atv.type, value: atv.value.toString() }))).reverse();
}

const parsedCache = new WeakMap<X509Certificate, Certificate>();
function parsed(cert: X509Certificate): Certificate {
  let asn = parsedCache.get(cert);
  if (asn === undefined) {
    asn = AsnConvert.parse(cert.raw, Certificate);
    parsedCache.set(cert, asn);
  }
  return asn;
}

/** The subject of a certificate, read from its DER with @peculiar/asn1-x509. */
export function subjectOf(cert: X509Certificate): DistinguishedName {
  return fromAsn(parsed(cert).tbsCertificate.subject);
}

export function issuerOf(cert: X509Certificate): DistinguishedName {
  return fromAsn(parsed(cert).tbsCertificate.issuer);
}

/** caseIgnoreMatch after RFC 4518 insignificant-space handling: trim, collapse inner runs, fold case. */
function prepare(value: string): string {
  return value.normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
}

function rdnKey(rdn: Attribute[]): string {
  return rdn.map((a) => `${a.type}=${prepare(a.value)}`).sort().join('+');
}

/** RDN order matters; attribute order inside a multi-valued RDN does not. */
export function distinguishedNamesEqual(a: DistinguishedName, b: DistinguishedName): boolean {
  return a.length === b.length && a.every((rdn, i) => rdnKey(rdn) === rdnKey(b[i]!));
}

function escapeValue(value: string): string {
  return value
    .replace(/[\\"+,;<=>]/g, (c) => `\\${c}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, '\\ ');
}

/** Canonical RFC 4514 form: short names where there is one, `, ` between RDNs. */
export function formatDistinguishedName(dn: DistinguishedName): string {
  return dn.map((rdn) => rdn.map((a) => `${OID_TO_NAME[a.type] ?? a.type}=${escapeValue(a.value)}`).join('+')).join(', ');
}

/** The first value of an attribute, by short name or OID. */
export function getAttribute(dn: DistinguishedName, nameOrOid: string): string | undefined {
  const oid = oidOf(nameOrOid);
  return dn.flat().find((a) => a.type === oid)?.value;
}

/** Names the first difference between two DNs, for an error a TPP can act on. */
export function describeDifference(expected: DistinguishedName, actual: DistinguishedName): string | undefined {
  for (let i = 0; i < Math.max(expected.length, actual.length); i += 1) {
    const e = expected[i];
    const a = actual[i];
    if (e === undefined) return `the certificate has an extra RDN ${formatDistinguishedName([a!])}`;
    if (a === undefined) return `the certificate lacks ${formatDistinguishedName([e])}`;
    if (rdnKey(e) !== rdnKey(a)) return `expected ${formatDistinguishedName([e])}, the certificate has ${formatDistinguishedName([a])}`;
  }
  return undefined;
}

import type { X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AttributeValue, Certificate, Name as AsnName } from '@peculiar/asn1-x509';
import { asnCertificateOf } from './certificate-extensions.ts';
import * as x509 from './x509.ts';

/*
 * Distinguished names compared as names, not strings (RFC 4517 §4.2.15 distinguishedNameMatch):
 * `CN=Acme, O=OpenBanking` and `cn=acme,o=openbanking` are the same subject. A TPP registers its
 * subject as an RFC 4514 string (RFC 8705 §2.1.2 `tls_client_auth_subject_dn`); the certificate's
 * subject is read from its DER. Both become a `DistinguishedName`, compared attribute by attribute.
 *
 * What comes from the @peculiar stack and what is ours:
 * - All ASN.1 is @peculiar's: certificate subjects and issuers are read with @peculiar/asn1-x509,
 *   `#`-hex values (RFC 4514 §2.4) are decoded as an X.520 AttributeValue with @peculiar/asn1-schema,
 *   and `toX509Name` builds an @peculiar/x509 `Name` for certificate generation.
 * - The RFC 4514 *string* reader is ours. @peculiar/x509 2.2's `new Name(string)` is a single regular
 *   expression that is the wrong tool for an authentication decision: it reads `garbage` and the
 *   empty string as an empty name, silently drops the empty RDN in `CN=x,,O=y`, turns the UTF-8
 *   escapes `\C3\A9` into the text "C3A9", accepts an unescaped `"`, refuses lowercase `cn=`, and
 *   keeps the string's order as the ASN.1 order, whereas RFC 4514 §2.1 writes the RDNs in reverse
 *   (most specific first). The reader below follows the grammar of RFC 4514 §3 and refuses the rest,
 *   with two leniencies TPPs rely on: spaces around `=`, `,` and `+` are skipped.
 */

/** One AttributeTypeAndValue. */
export interface Attribute {
  /** Dotted OID of the attribute type. */
  type: string;
  /**
   * The value as text. A value that is not a character string (RFC 4514 §2.4: no string form is
   * known) is `#` followed by the lowercase hex of its BER encoding, with `binary` set.
   */
  value: string;
  binary?: true;
}

/** A multi-valued RDN holds several attributes; order inside it carries no meaning. */
export type RelativeDistinguishedName = Attribute[];

/**
 * RDNs in RFC 4514 string order: most specific first (`CN=…` before `C=…`), which is the reverse
 * of the ASN.1 RDNSequence in the certificate (RFC 4514 §2.1).
 */
export type DistinguishedName = RelativeDistinguishedName[];

/** A string that is not an RFC 4514 distinguished name; the message says where and why. */
export class InvalidDistinguishedNameError extends Error {
  override readonly name = 'InvalidDistinguishedNameError';
}

/**
 * Attribute types known by name: each OID with the name it is written with, then its aliases.
 * RFC 4514 §3 (CN L ST O OU C STREET DC UID), RFC 4519, X.520 (organizationIdentifier, used by
 * ETSI EN 319 412-1 for PSD2 QWACs), PKCS #9 emailAddress, the CA/Browser Forum EV jurisdiction
 * names, and every name @peculiar/x509 knows (E, G, I, SN, T), so its output parses here.
 */
const ATTRIBUTE_TYPES: readonly (readonly [oid: string, name: string, ...aliases: string[]])[] = [
  ['2.5.4.3', 'CN', 'commonName'],
  ['2.5.4.4', 'SN', 'surname'],
  ['2.5.4.5', 'serialNumber'],
  ['2.5.4.6', 'C', 'countryName'],
  ['2.5.4.7', 'L', 'localityName'],
  ['2.5.4.8', 'ST', 'stateOrProvinceName'],
  ['2.5.4.9', 'STREET', 'streetAddress'],
  ['2.5.4.10', 'O', 'organizationName'],
  ['2.5.4.11', 'OU', 'organizationalUnitName'],
  ['2.5.4.12', 'title', 'T'],
  ['2.5.4.13', 'description'],
  ['2.5.4.15', 'businessCategory'],
  ['2.5.4.17', 'postalCode'],
  ['2.5.4.42', 'GN', 'givenName', 'G'],
  ['2.5.4.43', 'initials', 'I'],
  ['2.5.4.44', 'generationQualifier'],
  ['2.5.4.46', 'dnQualifier'],
  ['2.5.4.65', 'pseudonym'],
  ['2.5.4.97', 'organizationIdentifier'],
  ['0.9.2342.19200300.100.1.1', 'UID', 'userId'],
  ['0.9.2342.19200300.100.1.25', 'DC', 'domainComponent'],
  ['1.2.840.113549.1.9.1', 'emailAddress', 'E', 'email'],
  ['1.3.6.1.4.1.311.60.2.1.1', 'jurisdictionL', 'jurisdictionLocalityName'],
  ['1.3.6.1.4.1.311.60.2.1.2', 'jurisdictionST', 'jurisdictionStateOrProvinceName'],
  ['1.3.6.1.4.1.311.60.2.1.3', 'jurisdictionC', 'jurisdictionCountryName'],
];

const OID_BY_NAME = new Map(ATTRIBUTE_TYPES.flatMap(([oid, ...names]) => names.map((n) => [n.toLowerCase(), oid] as const)));
const NAME_BY_OID = new Map(ATTRIBUTE_TYPES.map(([oid, name]) => [oid, name]));

/** RFC 4512 §1.4 numericoid: no leading zeros. */
const NUMERIC_OID = /^(0|[1-9]\d*)(\.(0|[1-9]\d*))+$/;
/** RFC 4512 §1.4 descr (keystring). */
const DESCR = /^[A-Za-z][A-Za-z0-9-]*$/;

/**
 * The OID of an attribute type written as a name (case-insensitive, RFC 4512 §1.4) or a dotted OID.
 * Throws for a name Moat does not know, so a configured attribute name is checked at start-up.
 */
export function resolveAttributeType(nameOrOid: string): string {
  const type = nameOrOid.trim();
  if (NUMERIC_OID.test(type)) return type;
  if (!DESCR.test(type)) throw new InvalidDistinguishedNameError(`"${type}" is not an attribute type (a name such as CN, or a dotted OID)`);
  const oid = OID_BY_NAME.get(type.toLowerCase());
  if (oid === undefined) throw new InvalidDistinguishedNameError(`unknown attribute type "${type}" (write it as a dotted OID)`);
  return oid;
}

const HEX_DIGIT = /^[0-9a-fA-F]$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads the X.520 AttributeValue a `#hex` value encodes (RFC 4514 §2.4 and §3 hexstring). */
function decodeHexValue(hex: string, position: number): Omit<Attribute, 'type'> {
  if (hex.length === 0 || hex.length % 2 !== 0 || ![...hex].every((c) => HEX_DIGIT.test(c))) {
    throw new InvalidDistinguishedNameError(`"#${hex}" at position ${position} is not a hex-encoded value (an even number of hex digits)`);
  }
  const bytes = Buffer.from(hex, 'hex');
  let decoded: AttributeValue;
  try {
    decoded = AsnConvert.parse(bytes, AttributeValue);
  } catch (cause) {
    throw new InvalidDistinguishedNameError(`"#${hex}" at position ${position} is not a BER-encoded value`, { cause });
  }
  // The decoder ignores trailing bytes; one value and nothing else is what the grammar means.
  if (!Buffer.from(AsnConvert.serialize(decoded)).equals(bytes)) {
    throw new InvalidDistinguishedNameError(`"#${hex}" at position ${position} is not a single DER-encoded value`);
  }
  return fromAsnValue(decoded);
}

/** A string value stays text (whatever its ASN.1 string type); anything else keeps its encoding. */
function fromAsnValue(value: AttributeValue): Omit<Attribute, 'type'> {
  const text = value.printableString ?? value.utf8String ?? value.ia5String ?? value.bmpString ?? value.universalString ?? value.teletexString;
  if (text !== undefined) return { value: text };
  return { value: `#${Buffer.from(AsnConvert.serialize(value)).toString('hex')}`, binary: true };
}

/** Characters that must be escaped inside a value (RFC 4514 §3: not in SUTF1, or `\` itself). */
const MUST_ESCAPE = new Set(['"', ';', '<', '>', '\u0000']);
/** Characters that may follow `\` as themselves (RFC 4514 §3 `escaped` / `special`). */
const ESCAPABLE = new Set([' ', '"', '#', '+', ',', ';', '<', '=', '>', '\\']);

/**
 * Reads an RFC 4514 string such as `CN=abc,OU=org1+O=OpenBanking,C=GB` (most specific RDN first).
 * Attribute types are names or OIDs; values may use `\` escapes, UTF-8 hex pairs (`\C3\A9`) and the
 * `#`-hex form of a BER value. Throws `InvalidDistinguishedNameError` naming the position and fault.
 */
export function parseDistinguishedName(dn: string): DistinguishedName {
  if (typeof dn !== 'string' || dn.trim() === '') throw new InvalidDistinguishedNameError('the distinguished name is empty');
  const rdns: DistinguishedName = [];
  let rdn: RelativeDistinguishedName = [];
  let i = 0;
  const skipSpaces = () => {
    while (dn[i] === ' ') i += 1;
  };

  for (;;) {
    skipSpaces();
    const typeStart = i;
    while (i < dn.length && /[A-Za-z0-9.-]/.test(dn[i]!)) i += 1;
    const typeText = dn.slice(typeStart, i);
    skipSpaces();
    if (typeText === '' || dn[i] !== '=') {
      if (typeText === '' && (dn[i] === ',' || dn[i] === '+')) throw new InvalidDistinguishedNameError(`empty RDN at position ${i}`);
      throw new InvalidDistinguishedNameError(`expected "type=value" at position ${typeStart}`);
    }
    const type = resolveAttributeType(typeText);
    i += 1;
    skipSpaces();

    const valueStart = i;
    let attribute: Attribute;
    if (dn[i] === '#') {
      i += 1;
      const hexStart = i;
      while (i < dn.length && dn[i] !== ',' && dn[i] !== '+' && dn[i] !== ' ') i += 1;
      attribute = { type, ...decodeHexValue(dn.slice(hexStart, i), valueStart) };
      skipSpaces();
    } else {
      let value = '';
      // Unescaped trailing spaces are not part of the value (RFC 4514 §2.4 escapes the ones that are).
      let trailingSpaces = 0;
      while (i < dn.length && dn[i] !== ',' && dn[i] !== '+') {
        const ch = dn[i]!;
        if (ch === '\\') {
          const next = dn[i + 1];
          if (next !== undefined && HEX_DIGIT.test(next) && HEX_DIGIT.test(dn[i + 2] ?? '')) {
            // RFC 4514 §2.4: a run of hex pairs is the UTF-8 encoding of one or more characters.
            const bytes: number[] = [];
            const runStart = i;
            while (dn[i] === '\\' && HEX_DIGIT.test(dn[i + 1] ?? '') && HEX_DIGIT.test(dn[i + 2] ?? '')) {
              bytes.push(parseInt(dn.slice(i + 1, i + 3), 16));
              i += 3;
            }
            try {
              value += strictUtf8.decode(Uint8Array.from(bytes));
            } catch {
              throw new InvalidDistinguishedNameError(`the escaped bytes at position ${runStart} are not UTF-8`);
            }
          } else if (next !== undefined && ESCAPABLE.has(next)) {
            value += next;
            i += 2;
          } else {
            throw new InvalidDistinguishedNameError(`invalid escape "\\${next ?? ''}" at position ${i}`);
          }
          trailingSpaces = 0;
          continue;
        }
        if (MUST_ESCAPE.has(ch)) {
          throw new InvalidDistinguishedNameError(`${ch === '\u0000' ? 'NUL' : `'${ch}'`} must be escaped in an attribute value (position ${i})`);
        }
        value += ch;
        trailingSpaces = ch === ' ' ? trailingSpaces + 1 : 0;
        i += 1;
      }
      if (trailingSpaces > 0) value = value.slice(0, -trailingSpaces);
      // RFC 4514 allows an empty value; a certificate subject attribute never has one, so an empty
      // value in a registered DN is a mistake worth reporting rather than a name that never matches.
      if (value === '') throw new InvalidDistinguishedNameError(`empty value for ${NAME_BY_OID.get(type) ?? type} at position ${valueStart}`);
      attribute = { type, value };
    }
    rdn.push(attribute);

    if (i >= dn.length) break;
    const separator = dn[i];
    i += 1;
    if (separator === ',') {
      rdns.push(rdn);
      rdn = [];
    } else if (separator !== '+') {
      throw new InvalidDistinguishedNameError(`expected "," or "+" at position ${i - 1}`);
    }
    skipSpaces();
    if (i >= dn.length) throw new InvalidDistinguishedNameError(`the distinguished name ends with "${separator}"`);
  }
  rdns.push(rdn);
  return rdns;
}

function fromAsnName(name: AsnName): DistinguishedName {
  // The ASN.1 RDNSequence starts with the most general RDN (C=…); RFC 4514 §2.1 writes it reversed.
  return name.map((rdn) => rdn.map((atv) => ({ type: atv.type, ...fromAsnValue(atv.value) }))).reverse();
}

function tbsOf(cert: X509Certificate): Certificate['tbsCertificate'] {
  return asnCertificateOf(cert).tbsCertificate;
}

/**
 * The subject of a certificate, read from its DER (not from node's display string, which loses
 * multi-valued RDNs and escapes nothing), in RFC 4514 order.
 */
export function subjectOf(cert: X509Certificate): DistinguishedName {
  return fromAsnName(tbsOf(cert).subject);
}

/** The issuer of a certificate, read from its DER, in RFC 4514 order. */
export function issuerOf(cert: X509Certificate): DistinguishedName {
  return fromAsnName(tbsOf(cert).issuer);
}

/**
 * A DER-encoded X.501 Name, in RFC 4514 order: a CA name from a TLS CertificateRequest's
 * certificate_authorities (RFC 5246 §7.4.4, RFC 8446 §4.2.4). Throws when the bytes are not a Name.
 */
export function distinguishedNameFromDer(der: Uint8Array): DistinguishedName {
  return fromAsnName(AsnConvert.parse(der, AsnName));
}

/**
 * RFC 4518 string preparation for caseIgnoreMatch (RFC 4517 §4.2.11): map (§2.2), normalise
 * (NFKC, §2.3), fold case, and insignificant space handling (§2.6.1: leading and trailing spaces
 * dropped, inner runs count as one). The ASN.1 string type does not take part (PrintableString
 * `GB` equals UTF8String `gb`).
 */
function prepare(value: string): string {
  return (
    value
      // §2.2: soft hyphens, joiners, variation selectors, zero-width space and most controls map to nothing…
      // biome-ignore lint/suspicious/noMisleadingCharacterClass: RFC 4518 §2.2 maps each of these code points to nothing, one by one, variation selectors included
      .replace(/[\u00AD\u034F\u1806\u180B-\u180D\uFE00-\uFE0F\uFFFC\u200B\u0000-\u0008\u000E-\u001F\u007F-\u0084\u0086-\u009F]/g, '')
      // …tab, line breaks and every other space separator map to SPACE.
      .replace(/[\t\n\u000B\f\r\u0085\p{Zs}\u2028\u2029]/gu, ' ')
      .normalize('NFKC')
      .toLowerCase()
      .trim()
      .replace(/ +/g, ' ')
  );
}

function attributeKey(a: Attribute): string {
  // A non-string value matches only the same encoding; a string never matches a non-string.
  return `${a.type}\u0000${a.binary === true ? `#${a.value.toLowerCase()}` : `"${prepare(a.value)}`}`;
}

function rdnKey(rdn: RelativeDistinguishedName): string {
  return rdn.map(attributeKey).sort().join('\u0001');
}

/**
 * RFC 4517 §4.2.15 distinguishedNameMatch: the same number of RDNs in the same order, each RDN
 * holding the same attributes in any order, types compared by OID and values by caseIgnoreMatch.
 */
export function distinguishedNamesEqual(a: DistinguishedName, b: DistinguishedName): boolean {
  return a.length === b.length && a.every((rdn, i) => rdnKey(rdn) === rdnKey(b[i]!));
}

/** RFC 4514 §2.4 escaping, and control characters as hex pairs so the result stays on one line. */
function escapeValue(a: Attribute): string {
  if (a.binary === true) return a.value;
  return a.value
    .replace(/[\\"+,;<>]/g, (c) => `\\${c}`)
    .replace(/[\u0000-\u001F\u007F]/g, (c) => `\\${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, '\\ ');
}

/** How `formatDistinguishedName` joins RDNs. */
export interface FormatOptions {
  /** `', '` (default) is how TPPs and directories usually write a DN; `','` is RFC 4514 §2.1 to the letter. */
  separator?: ', ' | ',';
}

/**
 * The RFC 4514 string of a DN (most specific RDN first), attribute types by their usual short name
 * (or dotted OID when there is none), values escaped. `parseDistinguishedName` reads it back equal.
 */
export function formatDistinguishedName(dn: DistinguishedName, options: FormatOptions = {}): string {
  const separator = options.separator ?? ', ';
  return dn.map((rdn) => rdn.map((a) => `${NAME_BY_OID.get(a.type) ?? a.type}=${escapeValue(a)}`).join('+')).join(separator);
}

/**
 * The value of an attribute (by name or OID), from the most specific RDN that has one; undefined
 * when the DN has none. Throws `InvalidDistinguishedNameError` for an unknown attribute name.
 */
export function getAttribute(dn: DistinguishedName, nameOrOid: string): string | undefined {
  const oid = resolveAttributeType(nameOrOid);
  return dn.flat().find((a) => a.type === oid)?.value;
}

/**
 * The first difference between an expected DN and the one a certificate has, in words a TPP can act
 * on (`expected OU=org-1, the certificate has OU=org-2`); undefined when the two are equal.
 */
export function describeDifference(expected: DistinguishedName, actual: DistinguishedName): string | undefined {
  for (let i = 0; i < Math.max(expected.length, actual.length); i += 1) {
    const e = expected[i];
    const a = actual[i];
    if (e === undefined) return `the certificate has an extra RDN ${formatDistinguishedName([a!])}`;
    if (a === undefined) return `the certificate lacks ${formatDistinguishedName([e])}`;
    if (rdnKey(e) === rdnKey(a)) continue;
    // Name the single differing attribute when the RDNs differ in one place only.
    const missing = e.filter((x) => !a.some((y) => attributeKey(x) === attributeKey(y)));
    const extra = a.filter((y) => !e.some((x) => attributeKey(x) === attributeKey(y)));
    if (missing.length === 1 && extra.length === 1) {
      return `expected ${formatDistinguishedName([missing])}, the certificate has ${formatDistinguishedName([extra])}`;
    }
    return `expected ${formatDistinguishedName([e])}, the certificate has ${formatDistinguishedName([a])}`;
  }
  return undefined;
}

/** The JSON @peculiar/x509 builds a `Name` from, with each value's ASN.1 string type chosen here. */
type X509NameJson = Record<string, { printableString?: string; utf8String?: string; ia5String?: string }[]>[];

const IA5_TYPES = new Set(['1.2.840.113549.1.9.1', '0.9.2342.19200300.100.1.25']);
/** X.680 PrintableString characters. */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/**
 * An @peculiar/x509 `Name` for certificate generation, in ASN.1 order (the reverse of the string).
 * Strings become PrintableString where they fit, else UTF8String (RFC 5280 §4.1.2.4); emailAddress
 * and DC are IA5String (RFC 5280 §4.1.2.6, RFC 4519 §2.4). Non-string values are not supported.
 */
export function toX509Name(dn: DistinguishedName): x509.Name {
  const json: X509NameJson = [...dn].reverse().map((rdn) => {
    const item: X509NameJson[number] = {};
    for (const a of rdn) {
      if (a.binary === true) throw new InvalidDistinguishedNameError(`cannot build a certificate name with the non-string value ${a.value}`);
      const value = IA5_TYPES.has(a.type) ? { ia5String: a.value } : PRINTABLE.test(a.value) ? { printableString: a.value } : { utf8String: a.value };
      const values = item[a.type] ?? [];
      values.push(value);
      item[a.type] = values;
    }
    return item;
  });
  return new x509.Name(json);
}

import { KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '../../src/pki/x509.ts';

/*
 * Real certificates for tests, built with @peculiar/x509 and WebCrypto keys: CAs, intermediates
 * and leaves with whatever validity, extended key usage and names a test needs. Subjects are
 * @peculiar/x509 JSON names in ASN.1 order (country first), so a test of RFC 4514 string handling
 * never depends on the string parser it is testing.
 */

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** ASN.1 order, most general first: `[{ C: ['GB'] }, { O: ['Acme'] }, { CN: ['sw-1'] }]`. */
export type JsonName = { [typeNameOrOid: string]: string[] }[];

/** A subject as JSON, or an @peculiar/x509 `Name` (such as `toX509Name` builds). */
export type SubjectName = JsonName | x509.Name;

/** `ECDSA` is P-256 with SHA-256; `RSA` is 2048-bit RSASSA-PKCS1-v1_5 with SHA-256. */
export type KeyAlgorithm = 'ECDSA' | 'RSA';

/** A certificate with its private key, as PEM and as node's `X509Certificate`. */
export interface TestCertificate {
  certPem: string;
  keyPem: string;
  certificate: X509Certificate;
  /** For signing children (CAs) and for WebCrypto use in tests. */
  privateKey: CryptoKey;
  keyAlgorithm: KeyAlgorithm;
}

/** A CA is a `TestCertificate` whose key signs certificates. */
export type TestCa = TestCertificate;

const KEY_PARAMS = {
  ECDSA: { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  RSA: {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
} as const;

const DAY = 86_400_000;

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f; // a positive INTEGER (RFC 5280 §4.1.2.2)
  return bytes.toString('hex');
}

async function newKeys(algorithm: KeyAlgorithm): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_PARAMS[algorithm].generate, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

function toPem(key: CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function result(cert: x509.X509Certificate, keys: CryptoKeyPair, keyAlgorithm: KeyAlgorithm): TestCertificate {
  const certificate = new X509Certificate(Buffer.from(cert.rawData));
  // node's PEM ends with a newline, so PEMs concatenate into a valid chain (`leaf.certPem + ca.certPem`).
  return { certPem: certificate.toString(), keyPem: toPem(keys.privateKey), certificate, privateKey: keys.privateKey, keyAlgorithm };
}

/** Validity and key options shared by every certificate made here. */
export interface CertificateOptions {
  /** Defaults to five minutes ago (a client with a slow clock still accepts it). */
  notBefore?: Date;
  /** Defaults to a year after `notBefore` (ten for a CA). */
  notAfter?: Date;
  keyAlgorithm?: KeyAlgorithm;
}

/** Options of a CA certificate. */
export interface CaOptions extends CertificateOptions {
  /** RFC 5280 §4.2.1.9 pathLenConstraint; unlimited when unset. */
  pathLength?: number;
  /** Leave out keyCertSign from the key usage (a CA that must not be able to sign certificates). */
  withoutKeyCertSign?: boolean;
  /** Further extensions (name or policy constraints, an unknown critical extension, …). */
  extensions?: x509.Extension[];
}

function validity(options: CertificateOptions, years: number): { notBefore: Date; notAfter: Date } {
  const notBefore = options.notBefore ?? new Date(Date.now() - 5 * 60_000);
  return { notBefore, notAfter: options.notAfter ?? new Date(notBefore.getTime() + years * 365 * DAY) };
}

async function caExtensions(keys: CryptoKeyPair, options: CaOptions, issuer?: TestCa): Promise<x509.Extension[]> {
  const usages = options.withoutKeyCertSign === true ? x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
  return [
    new x509.BasicConstraintsExtension(true, options.pathLength, true),
    new x509.KeyUsagesExtension(usages, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ...(issuer === undefined ? [] : [await x509.AuthorityKeyIdentifierExtension.create(new x509.X509Certificate(issuer.certPem))]),
    ...(options.extensions ?? []),
  ];
}

/** A self-signed root CA. */
export async function createTestCa(subject: SubjectName, options: CaOptions = {}): Promise<TestCa> {
  const keyAlgorithm = options.keyAlgorithm ?? 'ECDSA';
  const keys = await newKeys(keyAlgorithm);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subject,
    keys,
    signingAlgorithm: KEY_PARAMS[keyAlgorithm].sign,
    ...validity(options, 10),
    extensions: await caExtensions(keys, options),
  });
  return result(cert, keys, keyAlgorithm);
}

async function issue(
  issuer: TestCa,
  subject: SubjectName,
  options: CertificateOptions,
  years: number,
  extensions: (keys: CryptoKeyPair) => Promise<x509.Extension[]>,
): Promise<TestCertificate> {
  const keyAlgorithm = options.keyAlgorithm ?? 'ECDSA';
  const keys = await newKeys(keyAlgorithm);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: new x509.X509Certificate(issuer.certPem).subjectName,
    publicKey: keys.publicKey,
    signingKey: issuer.privateKey,
    signingAlgorithm: KEY_PARAMS[issuer.keyAlgorithm].sign,
    ...validity(options, years),
    extensions: await extensions(keys),
  });
  return result(cert, keys, keyAlgorithm);
}

/** An intermediate CA signed by `issuer`. */
export async function createIntermediateCa(issuer: TestCa, subject: SubjectName, options: CaOptions = {}): Promise<TestCa> {
  return issue(issuer, subject, options, 5, (keys) => caExtensions(keys, options, issuer));
}

/** Options of an end-entity certificate. */
export interface LeafOptions extends CertificateOptions {
  subject: SubjectName;
  /**
   * Extended key usages, by name (`clientAuth`, `serverAuth`, …) or OID. Defaults to
   * `['clientAuth']`; an empty list leaves the extension out (RFC 5280 §4.2.1.12: any use).
   */
  eku?: string[];
  /** subjectAltName entries. */
  san?: { dns?: string[]; ip?: string[]; email?: string[]; url?: string[] };
  /** Further extensions (certificate policies, an unknown critical extension, …). */
  extensions?: x509.Extension[];
}

/** An end-entity certificate signed by `ca`. */
export async function issueLeaf(ca: TestCa, options: LeafOptions): Promise<TestCertificate> {
  const eku = (options.eku ?? ['clientAuth']).map((u) => (x509.ExtendedKeyUsage as Record<string, string>)[u] ?? u);
  const sans = [
    ...(options.san?.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.san?.ip ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(options.san?.email ?? []).map((value) => ({ type: 'email' as const, value })),
    ...(options.san?.url ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  return issue(ca, options.subject, options, 1, async (keys) => [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (options.keyAlgorithm === 'RSA' ? x509.KeyUsageFlags.keyEncipherment : 0), true),
    ...(eku.length === 0 ? [] : [new x509.ExtendedKeyUsageExtension(eku)]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(new x509.X509Certificate(ca.certPem)),
    ...(sans.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(sans)]),
    ...(options.extensions ?? []),
  ]);
}

/** A self-signed end-entity certificate (no CA flag), as a TPP makes for self_signed_tls_client_auth. */
export async function createSelfSignedLeaf(subject: SubjectName, options: CertificateOptions & { eku?: string[] } = {}): Promise<TestCertificate> {
  const keyAlgorithm = options.keyAlgorithm ?? 'ECDSA';
  const keys = await newKeys(keyAlgorithm);
  const eku = (options.eku ?? ['clientAuth']).map((u) => (x509.ExtendedKeyUsage as Record<string, string>)[u] ?? u);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subject,
    keys,
    signingAlgorithm: KEY_PARAMS[keyAlgorithm].sign,
    ...validity(options, 1),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...(eku.length === 0 ? [] : [new x509.ExtendedKeyUsageExtension(eku)]),
    ],
  });
  return result(cert, keys, keyAlgorithm);
}

/** The DER of a certificate as an RFC 8941 Byte Sequence (`:base64:`), as RFC 9440 forwards it. */
export function byteSequence(cert: TestCertificate): string {
  return `:${cert.certificate.raw.toString('base64')}:`;
}

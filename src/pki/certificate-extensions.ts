import type { X509Certificate } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  CertificatePolicies,
  GeneralName,
  id_ce_certificatePolicies_anyPolicy,
  InhibitAnyPolicy,
  NameConstraints,
  PolicyConstraints,
  SubjectAlternativeName,
  type Extension,
  type Name,
} from '@peculiar/asn1-x509';
import { perCertificate } from './per-certificate.ts';

/*
 * The parts of RFC 5280 path validation that need a certificate's extensions decoded (all ASN.1 is
 * @peculiar/asn1-x509's; node:crypto exposes none of these): unknown critical extensions (§4.2),
 * name constraints (§4.2.1.10, §6.1.3 (b)(c), §6.1.4 (g)) and the explicit-policy requirement of
 * policy constraints (§4.2.1.11). The decisions are ours; `certificate-chain.ts` applies them to
 * a candidate path.
 */

const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  issuerAltName: '2.5.29.18',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  crlDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  policyMappings: '2.5.29.33',
  authorityKeyIdentifier: '2.5.29.35',
  policyConstraints: '2.5.29.36',
  extKeyUsage: '2.5.29.37',
  freshestCrl: '2.5.29.46',
  inhibitAnyPolicy: '2.5.29.54',
  subjectDirectoryAttributes: '2.5.29.9',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  qcStatements: '1.3.6.1.5.5.7.1.3',
  subjectInfoAccess: '1.3.6.1.5.5.7.1.11',
} as const;

/**
 * Extensions Moat understands when a CA marks them critical: each is either enforced on the path
 * (basic constraints, key usage, extended key usage, name constraints, policy constraints and
 * inhibitAnyPolicy's effect on them), or informational with nothing to enforce for TLS client
 * authentication (identifiers, distribution points, policies under any-policy, QC statements).
 * Policy mappings only rename policies; with no required policy set there is nothing to map.
 */
const UNDERSTOOD = new Set<string>(Object.values(OID));

/**
 * The certificate as @peculiar/asn1-x509 decodes it, decoded once per distinct certificate (by DER,
 * not per X509Certificate object: a forwarded header or a registry row makes a new object for the
 * same certificate on every request). Shared: callers read it and never change it.
 */
export const asnCertificateOf: (cert: X509Certificate) => Certificate = perCertificate((cert) => AsnConvert.parse(cert.raw, Certificate));

function extensionsOf(cert: X509Certificate): Extension[] {
  return asnCertificateOf(cert).tbsCertificate.extensions ?? [];
}

/** The value of the extension `oid` (the content of its extnValue), undecoded; undefined when absent. */
export function extensionValue(cert: X509Certificate, oid: string): ArrayBuffer | undefined {
  return extensionsOf(cert).find((e) => e.extnID === oid)?.extnValue.buffer;
}

/**
 * Each certificate's extensions as decoded so far, by OID (with the type each was decoded as): path
 * validation reads the same few on every verification, and a certificate forwarded by a gateway is
 * verified on every request. Shared: callers read them and never change them.
 */
const decodedExtensionsOf = perCertificate(() => new Map<string, { type: unknown; decoded: unknown }>());

/** The extension `oid` decoded as `type`, decoded once per certificate; undefined when absent. */
export function decodedExtension<T>(cert: X509Certificate, oid: string, type: new () => T): T | undefined {
  const decoded = decodedExtensionsOf(cert);
  const known = decoded.get(oid);
  if (known?.type === type) return known.decoded as T | undefined;
  const value = extensionValue(cert, oid);
  const result = value === undefined ? undefined : AsnConvert.parse(value, type);
  decoded.set(oid, { type, decoded: result });
  return result;
}

/** RFC 5280 §4.2.1.9 pathLenConstraint of a CA; undefined when unlimited. */
export function pathLengthConstraint(cert: X509Certificate): number | undefined {
  const length = decodedExtension(cert, OID.basicConstraints, BasicConstraints)?.pathLenConstraint;
  return length === undefined ? undefined : Number(length);
}

/** RFC 5280 §4.2: the OID of the first critical extension Moat does not process, if any. */
export function unknownCriticalExtension(cert: X509Certificate): string | undefined {
  return extensionsOf(cert).find((e) => e.critical && !UNDERSTOOD.has(e.extnID))?.extnID;
}

// ---- Name constraints (RFC 5280 §4.2.1.10) ----

/** The names a certificate is known by, by GeneralName form. */
interface CertificateNames {
  /** The subject as an ASN.1 RDNSequence (most general RDN first); absent when empty. */
  directoryName?: Name;
  dNSName: string[];
  rfc822Name: string[];
  uniformResourceIdentifier: string[];
  iPAddress: string[];
  /** Forms Moat does not evaluate (otherName, x400Address, ediPartyName, registeredID). */
  other: string[];
}

const EMAIL_ADDRESS = '1.2.840.113549.1.9.1';

function namesOf(cert: X509Certificate): CertificateNames {
  const subject = asnCertificateOf(cert).tbsCertificate.subject;
  const names: CertificateNames = { dNSName: [], rfc822Name: [], uniformResourceIdentifier: [], iPAddress: [], other: [] };
  if (subject.length > 0) names.directoryName = subject;
  // §4.2.1.10: legacy emailAddress attributes in the subject are constrained as rfc822Names.
  for (const rdn of subject) for (const atv of rdn) if (atv.type === EMAIL_ADDRESS) names.rfc822Name.push(atv.value.toString());
  for (const name of decodedExtension(cert, OID.subjectAltName, SubjectAlternativeName) ?? []) {
    const form = formOf(name);
    if (form === 'directoryName') continue;
    if (form === 'other') names.other.push(describeForm(name));
    else names[form].push(generalNameValue(name, form));
  }
  return names;
}

type Form = 'directoryName' | 'dNSName' | 'rfc822Name' | 'uniformResourceIdentifier' | 'iPAddress' | 'other';

function formOf(name: GeneralName): Form {
  if (name.directoryName !== undefined) return 'directoryName';
  if (name.dNSName !== undefined) return 'dNSName';
  if (name.rfc822Name !== undefined) return 'rfc822Name';
  if (name.uniformResourceIdentifier !== undefined) return 'uniformResourceIdentifier';
  if (name.iPAddress !== undefined) return 'iPAddress';
  return 'other';
}

function describeForm(name: GeneralName): string {
  if (name.otherName !== undefined) return 'otherName';
  if (name.x400Address !== undefined) return 'x400Address';
  if (name.ediPartyName !== undefined) return 'ediPartyName';
  return 'registeredID';
}

function generalNameValue(name: GeneralName, form: Exclude<Form, 'directoryName' | 'other'>): string {
  return name[form] ?? '';
}

/** dNSName: the constraint plus zero or more labels on the left (`example.com` covers `a.example.com`). */
function dnsWithin(dns: string, base: string): boolean {
  const n = dns.toLowerCase().replace(/\.$/, '');
  const b = base.toLowerCase().replace(/^\./, '').replace(/\.$/, '');
  return b === '' || n === b || n.endsWith(`.${b}`);
}

/** rfc822Name: a mailbox, every mailbox at a host (`host`), or at any host of a domain (`.domain`). */
function emailWithin(email: string, base: string): boolean {
  const at = email.lastIndexOf('@');
  const host = email.slice(at + 1).toLowerCase();
  if (base.includes('@')) return email.slice(0, at) === base.slice(0, base.lastIndexOf('@')) && host === base.slice(base.lastIndexOf('@') + 1).toLowerCase();
  if (base.startsWith('.')) return host.endsWith(base.toLowerCase());
  return host === base.toLowerCase();
}

/** URI: the host of the URI, exactly, or within a domain when the constraint starts with a dot. */
function uriWithin(uri: string, base: string): boolean {
  let host: string;
  try {
    host = new URL(uri).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (base.startsWith('.')) return host.endsWith(base.toLowerCase());
  return host === base.toLowerCase();
}

/** iPAddress: the address inside the constraint's network (`a.b.c.d/n` as the decoder writes it). */
function ipWithin(ip: string, base: string): boolean {
  const [network, prefix] = base.split('/');
  const family = isIP(network ?? '');
  if (family === 0 || prefix === undefined || isIP(ip) !== family) return false;
  const block = new BlockList();
  const type = family === 4 ? 'ipv4' : 'ipv6';
  block.addSubnet(network!, Number(prefix), type);
  return block.check(ip, type);
}

/** directoryName: the subject's RDNSequence starts with the constraint's (compared as DER). */
function directoryWithin(subject: Name, base: Name): boolean {
  if (base.length > subject.length) return false;
  return base.every((rdn, i) => Buffer.from(AsnConvert.serialize(rdn)).equals(Buffer.from(AsnConvert.serialize(subject[i]!))));
}

function within(form: Exclude<Form, 'other'>, value: string | Name, base: GeneralName): boolean {
  switch (form) {
    case 'directoryName':
      return directoryWithin(value as Name, base.directoryName!);
    case 'dNSName':
      return dnsWithin(value as string, base.dNSName!);
    case 'rfc822Name':
      return emailWithin(value as string, base.rfc822Name!);
    case 'uniformResourceIdentifier':
      return uriWithin(value as string, base.uniformResourceIdentifier!);
    case 'iPAddress':
      return ipWithin(value as string, base.iPAddress!);
  }
}

function display(form: Exclude<Form, 'other'>, value: string | Name): string {
  return form === 'directoryName' ? 'the subject' : `${form} ${String(value)}`;
}

/**
 * Why `cert` breaks the name constraints of `ca` (a CA above it on the path), or undefined.
 * Every name of a form the CA constrains must lie in one of the permitted subtrees of that form,
 * when there are any, and in none of the excluded ones (§6.1.4 (g)). A name of a form Moat does not
 * evaluate, under a constraint on that form, is refused (§4.2.1.10: process it or reject).
 */
export function nameConstraintViolation(cert: X509Certificate, ca: X509Certificate): string | undefined {
  const constraints = decodedExtension(ca, OID.nameConstraints, NameConstraints);
  if (constraints === undefined) return undefined;
  const permitted = [...(constraints.permittedSubtrees ?? [])].map((s) => s.base);
  const excluded = [...(constraints.excludedSubtrees ?? [])].map((s) => s.base);
  const names = namesOf(cert);
  const checked: [Exclude<Form, 'other'>, (string | Name)[]][] = [
    ['directoryName', names.directoryName === undefined ? [] : [names.directoryName]],
    ['dNSName', names.dNSName],
    ['rfc822Name', names.rfc822Name],
    ['uniformResourceIdentifier', names.uniformResourceIdentifier],
    ['iPAddress', names.iPAddress],
  ];
  for (const [form, values] of checked) {
    const allowed = permitted.filter((b) => formOf(b) === form);
    const denied = excluded.filter((b) => formOf(b) === form);
    for (const value of values) {
      if (denied.some((b) => within(form, value, b))) return `${display(form, value)} is excluded by the name constraints of`;
      if (allowed.length > 0 && !allowed.some((b) => within(form, value, b))) return `${display(form, value)} is outside the names permitted by`;
    }
  }
  const otherConstrained = [...permitted, ...excluded].filter((b) => formOf(b) === 'other').map(describeForm);
  const unevaluated = names.other.find((form) => otherConstrained.includes(form));
  if (unevaluated !== undefined) return `the certificate's ${unevaluated} name cannot be checked against the ${unevaluated} name constraints of`;
  return undefined;
}

// ---- Explicit policy (RFC 5280 §4.2.1.11, §4.2.1.14, §6.1) ----

/** SkipCerts ::= INTEGER (0..MAX), which the decoder leaves as big-endian bytes. */
function skipCerts(value: ArrayBuffer): number {
  return new Uint8Array(value).reduce((n, byte) => Math.min(n * 256 + byte, Number.MAX_SAFE_INTEGER), 0);
}

/**
 * RFC 5280 §6.1: subject and issuer are the same name (a CA's key rollover certificate, say).
 * Answered once per certificate: path building asks it of every candidate on every verification,
 * and re-encoding both names was most of a forwarded certificate's per-request ASN.1 cost.
 */
export const isSelfIssued: (cert: X509Certificate) => boolean = perCertificate((cert) => {
  const tbs = asnCertificateOf(cert).tbsCertificate;
  return Buffer.from(AsnConvert.serialize(tbs.subject)).equals(Buffer.from(AsnConvert.serialize(tbs.issuer)));
});

/**
 * Moat asks for no particular certificate policy (user-initial-policy-set any-policy, initial
 * explicit policy off, §6.1.1), so policy matters only where a CA on the path requires an explicit
 * policy. The counters are §6.1's: `explicit_policy` and `inhibit_anyPolicy` start at n + 1, fall by
 * one per certificate that is not self-issued, and are capped by each CA's requireExplicitPolicy and
 * inhibitAnyPolicy; once explicit policy is required, the path needs a valid policy tree, which
 * disappears at the first certificate that asserts no policy (or only anyPolicy while inhibited).
 * Simplified where it cannot matter with no required set: policies are not intersected level by
 * level, and policy mappings are not applied.
 * `path` is leaf first, anchor last (the anchor's own extensions are not processed, §6.1.1 (d)).
 * Returns the index of the certificate that ended the policy tree on a failing path, or undefined.
 */
export function explicitPolicyViolation(path: readonly X509Certificate[]): number | undefined {
  const below = path.slice(0, -1).reverse(); // c_1 (issued by the anchor) … c_n (the leaf)
  const n = below.length;
  let explicitPolicy = n + 1;
  let inhibitAnyPolicy = n + 1;
  // The first certificate that asserted no (honoured) policy: the valid policy tree ends there.
  let treeLostAt: number | undefined;
  for (const [k, cert] of below.entries()) {
    const leaf = k === n - 1;
    const policies = [...(decodedExtension(cert, OID.certificatePolicies, CertificatePolicies) ?? [])].map((p) => p.policyIdentifier);
    const anyHonoured = inhibitAnyPolicy > 0 || (!leaf && isSelfIssued(cert));
    if (treeLostAt === undefined && !policies.some((p) => p !== id_ce_certificatePolicies_anyPolicy || anyHonoured)) treeLostAt = n - 1 - k;
    // §6.1.3 (f)
    if (treeLostAt !== undefined && explicitPolicy === 0) return treeLostAt;
    const constraints = decodedExtension(cert, OID.policyConstraints, PolicyConstraints);
    if (leaf) {
      // §6.1.5 (a), (b), (g)
      if (explicitPolicy !== 0) explicitPolicy -= 1;
      if (constraints?.requireExplicitPolicy !== undefined && skipCerts(constraints.requireExplicitPolicy) === 0) explicitPolicy = 0;
      return explicitPolicy === 0 ? treeLostAt : undefined;
    }
    // §6.1.4 (h), (i), (j)
    if (!isSelfIssued(cert)) {
      if (explicitPolicy !== 0) explicitPolicy -= 1;
      if (inhibitAnyPolicy !== 0) inhibitAnyPolicy -= 1;
    }
    if (constraints?.requireExplicitPolicy !== undefined) explicitPolicy = Math.min(explicitPolicy, skipCerts(constraints.requireExplicitPolicy));
    const inhibit = decodedExtension(cert, OID.inhibitAnyPolicy, InhibitAnyPolicy);
    if (inhibit !== undefined) inhibitAnyPolicy = Math.min(inhibitAnyPolicy, skipCerts(inhibit.value));
  }
  return undefined;
}

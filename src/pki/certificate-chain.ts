import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { explicitPolicyViolation, isSelfIssued, nameConstraintViolation, pathLengthConstraint, unknownCriticalExtension } from './certificate-extensions.ts';
import { formatDistinguishedName, issuerOf, subjectOf } from './distinguished-name.ts';

/*
 * Trust anchors for TPP transport certificates, and the one chain-verification policy both ways a
 * certificate reaches Moat share (the TLS handshake, and a gateway's forwarded header). Signatures
 * and issuer/subject matching are node:crypto's (OpenSSL); extensions node does not expose (basic
 * constraints' path length, name and policy constraints) are read with @peculiar's ASN.1 stack
 * (certificate-extensions.ts). Moat applies the policy of RFC 5280 §6.1: validity, CA flags and key
 * usage, path length, name constraints, explicit policy, unknown critical extensions, depth, and
 * clientAuth.
 *
 * Why path building is Moat's own and not pkijs's CertificateChainValidationEngine: it runs on every
 * new TLS connection and must answer synchronously inside the handshake's request, where pkijs's is
 * asynchronous (WebCrypto); it verifies signatures with OpenSSL through node:crypto; it bounds the
 * search a client can cause (depth, candidates); and pkijs's engine accepts a critical extension
 * it does not understand so long as it parses. What is left to us is the policy above, each rule
 * tested in test/tls/certificate-chain.test.ts.
 * Revocation (CRL, OCSP) is not checked here: it needs the issuer's responders, which this
 * synchronous, offline check does not reach.
 */

/** The CAs TPP certificates must chain to. */
export interface TrustAnchors {
  certificates: X509Certificate[];
  /** Concatenated PEM, for the TLS server's `ca` option (the CertificateRequest's CA list). */
  pem: string;
}

/** Why a presented certificate is not trusted (a closed set, so callers can map each to an error). */
export type ChainFailure = 'untrusted-chain' | 'expired' | 'not-yet-valid' | 'not-for-client-auth';

/** The outcome of `verifyCertificateChain`; `description` is fit for an error message to the TPP. */
export type ChainVerification = { trusted: true; anchor: X509Certificate } | { trusted: false; reason: ChainFailure; description: string };

/**
 * At most this many certificates below the trust anchor: the leaf and up to four intermediates.
 * Open banking PKIs use one or two; the bound limits the path search an attacker can cause.
 */
export const MAX_CHAIN_DEPTH = 5;
/**
 * Only this many of the certificates sent along are considered as intermediates: with the depth
 * bound it caps the path search (10 candidates, 4 levels) whatever a client puts in its handshake.
 */
const MAX_INTERMEDIATES = 10;
/** RFC 5280 §4.2.1.12 id-kp-clientAuth, and anyExtendedKeyUsage. */
const CLIENT_AUTH_EKU = '1.3.6.1.5.5.7.3.2';
const ANY_EKU = '2.5.29.37.0';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every PEM certificate in a text, in order. Throws when a block is not a certificate. */
function splitPemCertificates(pem: string): X509Certificate[] {
  return (pem.match(PEM_BLOCK) ?? []).map((block) => new X509Certificate(block));
}

/** A certificate's subject as RFC 4514 text, for messages. */
function describe(cert: X509Certificate): string {
  return formatDistinguishedName(subjectOf(cert));
}

/**
 * Reads the trust anchors from PEM files (each may hold several certificates). Refuses, naming the
 * file, one that cannot be read, holds no certificate, or holds a certificate that is not a CA.
 */
export function loadTrustAnchors(pemFiles: readonly string[]): TrustAnchors {
  const certificates: X509Certificate[] = [];
  for (const file of pemFiles) {
    let found: X509Certificate[];
    try {
      found = splitPemCertificates(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`trust anchor ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (found.length === 0) throw new Error(`trust anchor ${file}: no PEM certificate in the file`);
    for (const cert of found) {
      if (!cert.ca) throw new Error(`trust anchor ${file}: ${describe(cert)} is not a CA certificate`);
      if (!certificates.some((c) => c.raw.equals(cert.raw))) certificates.push(cert);
    }
  }
  return { certificates, pem: certificates.map((c) => c.toString()).join('') };
}

function validityProblem(cert: X509Certificate, now: Date): 'expired' | 'not-yet-valid' | undefined {
  if (now.getTime() > cert.validToDate.getTime()) return 'expired';
  if (now.getTime() < cert.validFromDate.getTime()) return 'not-yet-valid';
  return undefined;
}

/**
 * Candidate paths `[leaf, …intermediates, anchor]` in which each certificate names the next as its
 * issuer and carries its signature, depth first. `checkIssued` is OpenSSL's X509_check_issued: names
 * and key identifiers match, and the issuer's key usage, if present, includes keyCertSign (RFC 5280
 * §4.2.1.3). Issued-by checks are memoised, so each pair's signature is verified at most once.
 */
function* candidatePaths(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  depth: { exceeded: boolean },
): Generator<X509Certificate[]> {
  const memo = new Map<X509Certificate, Map<X509Certificate, boolean>>();
  const issuedBy = (cert: X509Certificate, issuer: X509Certificate): boolean => {
    let row = memo.get(cert);
    if (row === undefined) {
      row = new Map();
      memo.set(cert, row);
    }
    let answer = row.get(issuer);
    if (answer === undefined) {
      answer = cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
      row.set(issuer, answer);
    }
    return answer;
  };
  function* extend(path: X509Certificate[]): Generator<X509Certificate[]> {
    const last = path[path.length - 1]!;
    for (const anchor of anchors) if (issuedBy(last, anchor)) yield [...path, anchor];
    const next = intermediates.filter((c) => c.ca && !path.some((p) => p.raw.equals(c.raw)) && issuedBy(last, c));
    if (next.length > 0 && path.length >= MAX_CHAIN_DEPTH) {
      depth.exceeded = true;
      return;
    }
    for (const c of next) yield* extend([...path, c]);
  }
  yield* extend([leaf]);
}

/** How a message names the certificate at `i` of a path (leaf first, anchor last). */
function who(path: readonly X509Certificate[], i: number): string {
  if (i === 0) return 'the certificate';
  return i === path.length - 1 ? `the trust anchor ${describe(path[i]!)}` : `the issuing CA ${describe(path[i]!)}`;
}

/** The first policy failure on a path whose signatures hold, or undefined when it is acceptable. */
function checkPath(path: X509Certificate[], now: Date): Extract<ChainVerification, { trusted: false }> | undefined {
  const anchorIndex = path.length - 1;
  for (const [i, cert] of path.entries()) {
    const problem = validityProblem(cert, now);
    if (problem === undefined) continue;
    const whom = who(path, i);
    const when = problem === 'expired' ? `expired on ${cert.validToDate.toISOString()}` : `is not valid before ${cert.validFromDate.toISOString()}`;
    return { trusted: false, reason: problem, description: `${whom} ${when}` };
  }
  for (const [i, cert] of path.entries()) {
    if (i === 0) continue;
    const pathLength = pathLengthConstraint(cert);
    // Intermediates between this CA and the leaf (RFC 5280 §4.2.1.9 counts the leaf out).
    if (pathLength !== undefined && i - 1 > pathLength) {
      return {
        trusted: false,
        reason: 'untrusted-chain',
        description: `the issuing CA ${describe(cert)} allows ${pathLength} intermediate CA(s) below it, the chain has ${i - 1}`,
      };
    }
  }
  for (const [i, cert] of path.entries()) {
    if (i === anchorIndex) continue;
    const oid = unknownCriticalExtension(cert);
    // RFC 5280 §4.2: a critical extension the validator does not process makes the certificate unusable.
    if (oid !== undefined)
      return { trusted: false, reason: 'untrusted-chain', description: `${who(path, i)} has a critical extension this server does not process (${oid})` };
  }
  // RFC 5280 §4.2.1.10, §6.1.3 (b)(c): a CA's name constraints bind every certificate below it, except
  // self-issued intermediates. The anchor's own constraints are applied too: a bank that constrains
  // a trust anchor means it.
  for (let ca = 1; ca < path.length; ca += 1) {
    for (let j = 0; j < ca; j += 1) {
      if (j > 0 && isSelfIssued(path[j]!)) continue;
      const violation = nameConstraintViolation(path[j]!, path[ca]!);
      if (violation !== undefined) return { trusted: false, reason: 'untrusted-chain', description: `${who(path, j)}: ${violation} ${who(path, ca)}` };
    }
  }
  const policyFailure = explicitPolicyViolation(path);
  if (policyFailure !== undefined) {
    return {
      trusted: false,
      reason: 'untrusted-chain',
      description: `${who(path, policyFailure)} asserts no certificate policy, and a CA on the path requires an explicit policy (RFC 5280 §4.2.1.11)`,
    };
  }
  const eku = path[0]!.keyUsage;
  if (eku !== undefined && eku.length > 0 && !eku.includes(CLIENT_AUTH_EKU) && !eku.includes(ANY_EKU)) {
    return {
      trusted: false,
      reason: 'not-for-client-auth',
      description: `the certificate's extended key usage does not include clientAuth (${CLIENT_AUTH_EKU})`,
    };
  }
  return undefined;
}

/**
 * Verifies that `leaf` chains through `intermediates` (as the client or gateway sent them, any
 * order) to one of `anchors`, and that the path is acceptable at `now`: every certificate within its
 * validity, every issuer a CA allowed to sign certificates within its path length, no more than
 * `MAX_CHAIN_DEPTH` certificates below the anchor, and a leaf whose extended key usage, when
 * present, allows TLS client authentication (RFC 5280 §4.2.1.12, RFC 8705 §2.1).
 */
export function verifyCertificateChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: TrustAnchors,
  now = new Date(),
): ChainVerification {
  const depth = { exceeded: false };
  let firstFailure: Extract<ChainVerification, { trusted: false }> | undefined;
  for (const path of candidatePaths(leaf, intermediates.slice(0, MAX_INTERMEDIATES), anchors.certificates, depth)) {
    const failure = checkPath(path, now);
    if (failure === undefined) return { trusted: true, anchor: path[path.length - 1]! };
    firstFailure ??= failure;
  }
  if (firstFailure !== undefined) return firstFailure;
  return {
    trusted: false,
    reason: 'untrusted-chain',
    description: depth.exceeded
      ? `no path from the certificate to a trust anchor within ${MAX_CHAIN_DEPTH} certificates`
      : `no path from the certificate (issuer ${formatDistinguishedName(issuerOf(leaf))}) to a trust anchor this server accepts`,
  };
}

/** RFC 8705 §3.1 `x5t#S256`: the base64url SHA-256 of the DER certificate. */
export function certificateThumbprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/*
 * Trust anchors for TPP certificates and the one chain-verification policy both certificate paths
 * share (a direct TLS handshake and a gateway's forwarded header). Signatures and issuer matching
 * are node:crypto's (OpenSSL); Moat decides only the policy: validity, CA flags, depth, clientAuth.
 */

export interface TrustAnchors {
  certificates: X509Certificate[];
  /** Concatenated PEM, for the TLS server's `ca` option (the CertificateRequest's CA list). */
  pem: string;
}

export type ChainVerification =
  | { trusted: true; anchor: X509Certificate }
  | { trusted: false; reason: 'untrusted-chain' | 'expired' | 'not-yet-valid' | 'not-for-client-auth'; description: string };

/** RFC 5280 paths in open banking PKIs are short; this bounds the work an attacker can ask for. */
const MAX_CHAIN_DEPTH = 5;
const CLIENT_AUTH_EKU = '1.3.6.1.5.5.7.3.2';
const ANY_EKU = '2.5.29.37.0';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function splitPemCertificates(pem: string): X509Certificate[] {
  return (pem.match(PEM_BLOCK) ?? []).map((block) => new X509Certificate(block));
}

export function loadTrustAnchors(pemFiles: readonly string[]): TrustAnchors {
  const certificates: X509Certificate[] = [];
  for (const file of pemFiles) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`trust anchor ${file}: ${(err as Error).message}`);
    }
    const found = splitPemCertificates(text);
    if (found.length === 0) throw new Error(`trust anchor ${file}: no PEM certificate in the file`);
    for (const cert of found) {
      if (!cert.ca) throw new Error(`trust anchor ${file}: ${cert.subject.replace(/\n/g, ', ')} is not a CA certificate`);
      certificates.push(cert);
    }
  }
  return { certificates, pem: certificates.map((c) => c.toString()).join('') };
}

function within(cert: X509Certificate, now: Date): 'expired' | 'not-yet-valid' | undefined {
  if (now.getTime() > new Date(cert.validTo).getTime()) return 'expired';
  if (now.getTime() < new Date(cert.validFrom).getTime()) return 'not-yet-valid';
  return undefined;
}

function issues(issuer: X509Certificate, cert: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

function oneLine(cert: X509Certificate): string {
  return cert.subject.replace(/\n/g, ', ');
}

/**
 * Builds a path from `leaf` through `intermediates` to one of `anchors`, checking every
 * certificate's validity at `now`, that every issuer is a CA, and that the leaf may be used for TLS
 * client authentication (RFC 5280 §4.2.1.12: an EKU extension, if present, must allow it).
 */
export function verifyCertificateChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: TrustAnchors,
  now = new Date(),
): ChainVerification {
  const eku = leaf.keyUsage;
  if (eku !== undefined && eku.length > 0 && !eku.includes(CLIENT_AUTH_EKU) && !eku.includes(ANY_EKU)) {
    return { trusted: false, reason: 'not-for-client-auth', description: `the certificate's extended key usage does not include clientAuth (${CLIENT_AUTH_EKU})` };
  }
  let current = leaf;
  for (let depth = 0; depth <= MAX_CHAIN_DEPTH; depth += 1) {
    const time = within(current, now);
    if (time !== undefined) {
      const when = time === 'expired' ? `expired on ${new Date(current.validTo).toISOString()}` : `is not valid before ${new Date(current.validFrom).toISOString()}`;
      return { trusted: false, reason: time, description: `${depth === 0 ? 'the certificate' : `the issuing CA ${oneLine(current)}`} ${when}` };
    }
    const anchor = anchors.certificates.find((a) => issues(a, current));
    if (anchor !== undefined) {
      const anchorTime = within(anchor, now);
      if (anchorTime !== undefined) return { trusted: false, reason: anchorTime, description: `the trust anchor ${oneLine(anchor)} is ${anchorTime === 'expired' ? 'expired' : 'not yet valid'}` };
      return { trusted: true, anchor };
    }
    const next = intermediates.find((c) => c !== current && c.ca && issues(c, current));
    if (next === undefined) break;
    current = next;
  }
  return {
    trusted: false,
    reason: 'untrusted-chain',
    description: `no path from the certificate (issuer ${leaf.issuer.replace(/\n/g, ', ')}) to a trust anchor this server accepts`,
  };
}

/** RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the DER certificate. */
export function certificateThumbprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

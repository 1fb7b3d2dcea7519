import type { X509Certificate as NodeX509 } from 'node:crypto';
import * as x509 from '../pki/x509.ts';
import { certificateThumbprint } from '../pki/certificate-chain.ts';
import { formatDistinguishedName, getAttribute, issuerOf, subjectOf } from '../pki/distinguished-name.ts';
import { parsePsd2QcStatement, QC_STATEMENTS_EXTENSION, type Psd2Attributes } from './psd2-qc-statement.ts';

/*
 * What the registry records of a certificate, read with real X.509 / ASN.1 parsers (node:crypto,
 * @peculiar/x509, @peculiar/asn1-*): never by string matching on a PEM.
 */

export interface CertificateProfile {
  /** RFC 8705 §3.1 x5t#S256. */
  thumbprint: string;
  subjectDn: string;
  issuerDn: string;
  /** Hex, as node:crypto prints it. */
  serial: string;
  sans: string[];
  notBefore: Date;
  notAfter: Date;
  keyType: string;
  /** Bits for RSA, the curve's size for EC, 256 for Ed25519. */
  keySize: number;
  /** The organisation identifier (eIDAS organizationIdentifier, 2.5.4.97), when present. */
  organizationIdentifier?: string;
  psd2?: Psd2Attributes;
  /** Where to ask about revocation (RFC 5280 §4.2.2.1 AIA, §4.2.1.13 CRL distribution points). */
  ocspUrls: string[];
  crlUrls: string[];
  pem: string;
}

export function certificateProfile(cert: NodeX509): CertificateProfile {
  const parsed = new x509.X509Certificate(cert.raw);
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  const curveBits: Record<string, number> = { prime256v1: 256, secp384r1: 384, secp521r1: 521 };
  const keySize =
    key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss'
      ? (details.modulusLength ?? 0)
      : key.asymmetricKeyType === 'ec'
        ? (curveBits[details.namedCurve ?? ''] ?? 0)
        : key.asymmetricKeyType === 'ed25519'
          ? 256
          : 0;

  const qc = parsed.getExtension(QC_STATEMENTS_EXTENSION);
  let psd2: Psd2Attributes | undefined;
  if (qc !== null) {
    try {
      psd2 = parsePsd2QcStatement(qc.value);
    } catch {
      // A malformed QCStatement grants nothing; the certificate is recorded without PSD2 roles.
      psd2 = undefined;
    }
  }
  const aia = parsed.getExtension(x509.AuthorityInfoAccessExtension);
  const cdp = parsed.getExtension(x509.CRLDistributionPointsExtension);
  const urlsOf = (names: readonly { type: string; value: string }[] | undefined) =>
    (names ?? []).filter((n) => n.type === 'url' && /^https?:\/\//i.test(n.value)).map((n) => n.value);
  const organizationIdentifier = getAttribute(subjectOf(cert), '2.5.4.97');

  return {
    thumbprint: certificateThumbprint(cert),
    subjectDn: formatDistinguishedName(subjectOf(cert)),
    issuerDn: formatDistinguishedName(issuerOf(cert)),
    serial: cert.serialNumber,
    sans: (cert.subjectAltName ?? '').split(', ').filter(Boolean),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    keyType: key.asymmetricKeyType ?? 'unknown',
    keySize,
    ...(organizationIdentifier === undefined ? {} : { organizationIdentifier }),
    ...(psd2 === undefined ? {} : { psd2 }),
    ocspUrls: urlsOf(aia?.ocsp.map((n) => n.toJSON())),
    crlUrls: urlsOf(cdp?.distributionPoints.flatMap((dp) => (dp.distributionPoint?.fullName ?? []).map((n) => new x509.GeneralName(n).toJSON()))),
    pem: cert.toString(),
  };
}

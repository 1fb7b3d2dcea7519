import type { X509Certificate as NodeX509 } from 'node:crypto';
import {
  AuthorityInfoAccessSyntax,
  CRLDistributionPoints,
  id_ad_ocsp,
  id_ce_cRLDistributionPoints,
  id_pe_authorityInfoAccess,
  type GeneralName,
} from '@peculiar/asn1-x509';
import { deepFrozen } from '../caching/copies.ts';
import { certificateThumbprint } from '../pki/certificate-chain.ts';
import { decodedExtension, extensionValue } from '../pki/certificate-extensions.ts';
import { formatDistinguishedName, getAttribute, issuerOf, subjectOf } from '../pki/distinguished-name.ts';
import { perCertificate } from '../pki/per-certificate.ts';
import { parsePsd2QcStatement, QC_STATEMENTS_EXTENSION, type Psd2Attributes } from './psd2-qc-statement.ts';

/*
 * What the registry records of a certificate, read with real X.509 / ASN.1 parsers (node:crypto,
 * @peculiar/asn1-*): never by string matching on a PEM. The extensions come from the certificate's
 * one shared ASN.1 decode (pki/certificate-extensions.ts), not from a second parse of the DER.
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

/**
 * The profile of a certificate, read once per distinct certificate: every registration reads it
 * several times (roles, the revocation pointers, the registry row), and the revocation monitor on
 * every run. It follows from the DER alone (notBefore/notAfter are compared to the clock by whoever
 * reads them); the one copy is frozen, since every caller shares it.
 */
export const certificateProfile: (cert: NodeX509) => Readonly<CertificateProfile> = perCertificate((cert) => deepFrozen(readProfile(cert)));

function readProfile(cert: NodeX509): CertificateProfile {
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

  const qc = extensionValue(cert, QC_STATEMENTS_EXTENSION);
  let psd2: Psd2Attributes | undefined;
  if (qc !== undefined) {
    try {
      psd2 = parsePsd2QcStatement(qc);
    } catch {
      // A malformed QCStatement grants nothing; the certificate is recorded without PSD2 roles.
      psd2 = undefined;
    }
  }
  const aia = decodedExtension(cert, id_pe_authorityInfoAccess, AuthorityInfoAccessSyntax);
  const cdp = decodedExtension(cert, id_ce_cRLDistributionPoints, CRLDistributionPoints);
  const urlsOf = (names: readonly GeneralName[]) =>
    names.map((n) => n.uniformResourceIdentifier).filter((url): url is string => url !== undefined && /^https?:\/\//i.test(url));
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
    ocspUrls: urlsOf([...(aia ?? [])].filter((d) => d.accessMethod === id_ad_ocsp).map((d) => d.accessLocation)),
    crlUrls: urlsOf([...(cdp ?? [])].flatMap((dp) => dp.distributionPoint?.fullName ?? [])),
    pem: cert.toString(),
  };
}

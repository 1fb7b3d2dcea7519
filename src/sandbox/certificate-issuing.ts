import { createPrivateKey, KeyObject, randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import * as x509 from '../pki/x509.ts';
import { encodePsd2QcStatements, QC_STATEMENTS_EXTENSION, type Psd2Role } from '../certificates/psd2-qc-statement.ts';

/*
 * The few certificate operations the sandbox needs, on @peculiar/x509 with WebCrypto keys:
 * ECDSA P-256 keys, a CA, and leaves it signs. Names are passed as JSON (ASN.1 order: country
 * first) so no DN string is parsed on the way.
 */

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
  certificate: NodeX509;
}

export type JsonName = { [type: string]: string[] }[];

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f; // a positive INTEGER (RFC 5280 §4.1.2.2)
  return bytes.toString('hex');
}

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

function keyPem(key: CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function importSigningKey(pem: string): CryptoKey {
  return createPrivateKey(pem).toCryptoKey(EC_P256, false, ['sign']) as CryptoKey;
}

function validity(now: Date, days: number): { notBefore: Date; notAfter: Date } {
  // Back-dated a little so a client with a slightly slow clock accepts it at once.
  return { notBefore: new Date(now.getTime() - 5 * 60_000), notAfter: new Date(now.getTime() + days * 86_400_000) };
}

export async function createCa(subject: JsonName, now: Date, days = 3650): Promise<IssuedCertificate> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subject,
    keys,
    signingAlgorithm: SIGNING,
    ...validity(now, days),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: keyPem(keys.privateKey), certificate: new NodeX509(cert.toString('pem')) };
}

export async function issueLeaf(
  ca: { certPem: string; keyPem: string },
  options: {
    /** `signing`: a signing certificate (JWS, eIDAS QSealC style): no TLS extended key usage. */
    subject: JsonName;
    usage: 'serverAuth' | 'clientAuth' | 'signing';
    dnsNames?: string[];
    ipAddresses?: string[];
    now: Date;
    days?: number;
    /** RFC 5280 §4.2.2.1 / §4.2.1.13: where relying parties ask about revocation. */
    ocspUrl?: string;
    crlUrl?: string;
    /** An eIDAS-style PSD2 QCStatement (ETSI TS 119 495). */
    psd2?: { roles: Psd2Role[]; ncaName: string; ncaId: string };
  },
): Promise<IssuedCertificate> {
  const keys = await newKeys();
  const caCert = new x509.X509Certificate(ca.certPem);
  const sans = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: options.subject,
    issuer: caCert.subjectName,
    publicKey: keys.publicKey,
    signingKey: importSigningKey(ca.keyPem),
    signingAlgorithm: SIGNING,
    ...validity(options.now, options.days ?? 365),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...(options.usage === 'signing'
        ? [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation, true)]
        : [
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([options.usage === 'serverAuth' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
          ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ...(sans.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(sans)]),
      ...(options.ocspUrl === undefined ? [] : [new x509.AuthorityInfoAccessExtension({ ocsp: [new x509.GeneralName('url', options.ocspUrl)] })]),
      ...(options.crlUrl === undefined ? [] : [new x509.CRLDistributionPointsExtension([options.crlUrl])]),
      ...(options.psd2 === undefined ? [] : [new x509.Extension(QC_STATEMENTS_EXTENSION, false, encodePsd2QcStatements(options.psd2))]),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: keyPem(keys.privateKey), certificate: new NodeX509(cert.toString('pem')) };
}

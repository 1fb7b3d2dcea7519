import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { certificateThumbprint } from '../../pki/certificate-chain.ts';
import { formatDistinguishedName, issuerOf, subjectOf } from '../../pki/distinguished-name.ts';
import { fail, pass, type CheckOutcome } from './checks.ts';

/*
 * The TPP's transport certificate and key, checked on this machine before they are presented to
 * anyone: readable, a matching pair, within their dates, and allowed for TLS client authentication.
 */

/** RFC 5280 §4.2.1.12 id-kp-clientAuth, and anyExtendedKeyUsage. */
const CLIENT_AUTH_EKU = '1.3.6.1.5.5.7.3.2';
const ANY_EKU = '2.5.29.37.0';
const DAY_MS = 86_400_000;

/** The transport credentials, read. */
export interface LocalCredentials {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
  certificate: X509Certificate;
  /** Certificates after the first in the file (intermediates the TPP sends along). */
  chain: X509Certificate[];
  privateKey: KeyObject;
  /** RFC 8705 §3.1 x5t#S256. */
  thumbprint: string;
  /** RFC 4514 strings. */
  subjectDn: string;
  issuerDn: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function readText(file: string, what: string): { text: string } | { problem: string } {
  try {
    return { text: readFileSync(file, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'there is no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    return { problem: `cannot read the ${what} ${file}: ${why}` };
  }
}

/** Reads the certificate (PEM, the leaf first) and the private key (PEM, unencrypted). */
export function readCredentials(certFile: string, keyFile: string): { credentials: LocalCredentials; outcome: CheckOutcome } | { outcome: CheckOutcome } {
  const fix = 'pass the transport certificate and its key as PEM files with --cert and --key (or --credentials DIR holding transport.pem and transport.key)';
  const cert = readText(certFile, 'certificate');
  if ('problem' in cert) return { outcome: fail('the certificate cannot be read', cert.problem, fix) };
  const blocks = cert.text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0)
    return { outcome: fail('the certificate cannot be read', `${certFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, fix) };
  let certificates: X509Certificate[];
  try {
    certificates = blocks.map((b) => new X509Certificate(b));
  } catch (err) {
    return {
      outcome: fail('the certificate cannot be read', `${certFile} holds a PEM block that is not an X.509 certificate: ${(err as Error).message}`, fix),
    };
  }
  const key = readText(keyFile, 'private key');
  if ('problem' in key) return { outcome: fail('the private key cannot be read', key.problem, fix) };
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key.text);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const cause =
      code === 'ERR_MISSING_PASSPHRASE'
        ? `${keyFile} is encrypted; diagnose (like a TLS client without a passphrase prompt) needs it unencrypted`
        : `${keyFile} is not a PEM private key (PKCS#8, PKCS#1 or SEC 1): ${(err as Error).message}`;
    return {
      outcome: fail(
        'the private key cannot be read',
        cause,
        code === 'ERR_MISSING_PASSPHRASE' ? 'decrypt it (openssl pkey -in KEY -out KEY.plain) and pass that file with --key' : fix,
      ),
    };
  }
  const certificate = certificates[0]!;
  const credentials: LocalCredentials = {
    certFile,
    keyFile,
    certPem: cert.text,
    keyPem: key.text,
    certificate,
    chain: certificates.slice(1),
    privateKey,
    thumbprint: certificateThumbprint(certificate),
    subjectDn: formatDistinguishedName(subjectOf(certificate)),
    issuerDn: formatDistinguishedName(issuerOf(certificate)),
  };
  return {
    credentials,
    outcome: pass(`${certFile}: ${credentials.subjectDn} (issued by ${credentials.issuerDn}); key ${keyFile}`, {
      subjectDn: credentials.subjectDn,
      issuerDn: credentials.issuerDn,
      thumbprint: credentials.thumbprint,
      intermediates: credentials.chain.length,
    }),
  };
}

/** The private key is the certificate's: their public keys (SPKI) are the same. */
export function checkKeyMatches(c: LocalCredentials): CheckOutcome {
  const fromKey = createPublicKey(c.privateKey).export({ type: 'spki', format: 'der' });
  const fromCertificate = c.certificate.publicKey.export({ type: 'spki', format: 'der' });
  if (fromKey.equals(fromCertificate)) return pass(`the ${(c.privateKey.asymmetricKeyType ?? '').toUpperCase()} key in ${c.keyFile} is the certificate's`);
  return fail(
    'the private key does not belong to the certificate',
    `the public key of ${c.keyFile} (${c.privateKey.asymmetricKeyType}) differs from the public key in ${c.certFile} (${c.certificate.publicKey.asymmetricKeyType}); the TLS handshake would fail to prove possession`,
    'pass the key the certificate was issued for (the one its CSR was made with); a re-issued certificate comes with, or needs, its own key',
  );
}

/** notBefore ≤ now ≤ notAfter (RFC 5280 §4.1.2.5). */
export function checkValidity(c: LocalCredentials, now = new Date()): CheckOutcome {
  const from = c.certificate.validFromDate;
  const to = c.certificate.validToDate;
  if (now.getTime() > to.getTime()) {
    return fail(
      'the certificate has expired',
      `it expired on ${to.toISOString()} (valid from ${from.toISOString()})`,
      'get a new transport certificate from your directory (in the sandbox: moat sandbox tpp) and register it (RFC 7592 update, or a new registration)',
    );
  }
  if (now.getTime() < from.getTime()) {
    return fail(
      'the certificate is not valid yet',
      `it is valid from ${from.toISOString()}; this machine's clock says ${now.toISOString()}`,
      "wait until it is valid, or check this machine's clock (and the issuing CA's): a certificate dated in the future is refused",
    );
  }
  const days = Math.floor((to.getTime() - now.getTime()) / DAY_MS);
  return pass(`valid until ${to.toISOString()} (${days} days left)`, { notBefore: from.toISOString(), notAfter: to.toISOString(), daysLeft: days });
}

/** RFC 8705 §2.1 / RFC 5280 §4.2.1.12: an extended key usage, when present, must allow clientAuth. */
export function checkClientAuthUsage(c: LocalCredentials): CheckOutcome {
  const eku = c.certificate.keyUsage;
  if (eku === undefined || eku.length === 0) return pass('no extended key usage extension: any use is allowed');
  if (eku.includes(CLIENT_AUTH_EKU) || eku.includes(ANY_EKU)) return pass('extended key usage includes clientAuth', { extendedKeyUsage: eku });
  return fail(
    'the certificate is not for TLS client authentication',
    `its extended key usage (${eku.join(', ')}) lacks clientAuth (${CLIENT_AUTH_EKU}); the server refuses it as a client certificate`,
    "use a transport certificate (a QWAC or your directory's transport certificate), not a signing or server certificate; request one with the clientAuth extended key usage",
    { extendedKeyUsage: eku },
  );
}

import type { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, type Stats } from 'node:fs';
import type { TrustAnchors } from '../pki/certificate-chain.ts';
import { distinguishedNameFromDer, formatDistinguishedName } from '../pki/distinguished-name.ts';
import * as x509 from '../pki/x509.ts';

/*
 * Revocation of operator certificates by the bank's own PKI: the operator CAs' CRLs as files
 * (`admin.tls.crlFiles`), read again whenever a file changes, so an operator who leaves is locked
 * out on their next request once the PKI team publishes the CRL — no restart. At start-up a CRL
 * that does not parse, or is not signed by one of the operator CAs, stops Moat naming its key.
 * Afterwards it fails closed: a CRL past its nextUpdate, or a file that stopped reading or
 * verifying, refuses that CA's certificates (the admin token still works) until a good one is back;
 * so does a certificate from a CA with no CRL here (an intermediate the client sent, say): with
 * crlFiles configured, no operator certificate goes unchecked.
 */

export interface OperatorRevocationFinding {
  code: 'certificate_revoked' | 'certificate_status_unknown';
  description: string;
}

export interface OperatorRevocation {
  /** Undefined when the certificate is not revoked, or no CRL is configured for its issuer. */
  check(certificate: X509Certificate): Promise<OperatorRevocationFinding | undefined>;
}

interface CrlFile {
  file: string;
  /** The CA the file is the CRL of, fixed at start-up: a later file may not switch CA. */
  issuer: string;
  ca: x509.X509Certificate;
  /** The CA's subject for messages (RFC 4514, as every other message names a DN). */
  caName: string;
  /** Which version of the file `crl` came from (a replaced file changes inode, size or times). */
  version: string;
  crl?: x509.X509Crl;
  /** Why the current file cannot be used; set instead of `crl` after a failed re-read. */
  problem?: string;
  reading?: Promise<void>;
}

/** RFC 4514 form of a DN that @peculiar/x509 parsed. */
const nameOf = (name: x509.Name) => formatDistinguishedName(distinguishedNameFromDer(new Uint8Array(name.toArrayBuffer())));

const versionOf = (stats: Stats) => `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;

function parseCrl(bytes: Buffer): x509.X509Crl {
  const text = bytes.toString('latin1');
  return new x509.X509Crl(text.includes('-----BEGIN X509 CRL-----') ? text : bytes);
}

async function verifiedCrl(bytes: Buffer, ca: x509.X509Certificate): Promise<x509.X509Crl> {
  const crl = parseCrl(bytes);
  if (crl.issuer !== ca.subject) throw new Error(`the CRL is issued by ${nameOf(crl.issuerName)}, not ${nameOf(ca.subjectName)}`);
  if (!(await crl.verify({ publicKey: ca.publicKey }))) throw new Error(`the CRL's signature does not verify with ${nameOf(ca.subjectName)}'s key`);
  return crl;
}

export async function loadOperatorRevocation(files: readonly string[], anchors: TrustAnchors, now: () => Date = () => new Date()): Promise<OperatorRevocation> {
  const cas = anchors.certificates.map((c) => new x509.X509Certificate(c.raw));
  const crlFiles: CrlFile[] = [];
  for (const [index, file] of files.entries()) {
    const key = `admin.tls.crlFiles.${index}`;
    try {
      // Stat first: a file replaced between the two is then read again on the first request.
      const version = versionOf(statSync(file));
      const bytes = readFileSync(file);
      const parsed = parseCrl(bytes);
      const ca = cas.find((c) => c.subject === parsed.issuer);
      if (ca === undefined) throw new Error(`the CRL is issued by ${nameOf(parsed.issuerName)}, which is none of admin.tls.clientCaFiles`);
      crlFiles.push({ file, issuer: parsed.issuer, ca, caName: nameOf(ca.subjectName), version, crl: await verifiedCrl(bytes, ca) });
    } catch (err) {
      throw new Error(`${key}: ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  // A stat per admin request (they are few); the file is read and verified only when it changed.
  const refresh = (entry: CrlFile): Promise<void> => {
    entry.reading ??= (async () => {
      try {
        const version = versionOf(statSync(entry.file));
        if (version === entry.version && entry.problem === undefined) return;
        entry.version = version;
        entry.crl = await verifiedCrl(readFileSync(entry.file), entry.ca);
        delete entry.problem;
      } catch (err) {
        delete entry.crl;
        entry.problem = (err as Error).message;
      }
    })().finally(() => {
      delete entry.reading;
    });
    return entry.reading;
  };

  return {
    async check(certificate) {
      const leaf = new x509.X509Certificate(certificate.raw);
      const covering = crlFiles.filter((e) => e.issuer === leaf.issuer);
      if (covering.length === 0) {
        return {
          code: 'certificate_status_unknown',
          description: `no CRL in admin.tls.crlFiles is of its issuer ${nameOf(leaf.issuerName)}, so its revocation status is unknown`,
        };
      }
      for (const entry of covering) {
        await refresh(entry);
        const { crl } = entry;
        if (crl === undefined) {
          return {
            code: 'certificate_status_unknown',
            description: `the operator CRL ${entry.file} of ${entry.caName} cannot be used (${entry.problem}); certificates of that CA are refused until a good CRL is published`,
          };
        }
        if (crl.nextUpdate !== undefined && crl.nextUpdate.getTime() < now().getTime()) {
          return {
            code: 'certificate_status_unknown',
            description: `the operator CRL ${entry.file} of ${entry.caName} was due for renewal at ${crl.nextUpdate.toISOString()}; certificates of that CA are refused until a current CRL is published`,
          };
        }
        const revoked = crl.findRevoked(leaf);
        if (revoked !== null) {
          return {
            code: 'certificate_revoked',
            description: `serial ${leaf.serialNumber} was revoked on ${revoked.revocationDate.toISOString()} according to ${entry.file}`,
          };
        }
      }
      return undefined;
    },
  };
}

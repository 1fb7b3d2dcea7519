import { X509Certificate } from 'node:crypto';
import { certificateProfile } from '../certificates/certificate-profile.ts';
import type { CertificateRegistry } from '../certificates/certificate-registry.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import type { SoftwareStatement } from './software-statement.ts';

/** The organisation and software a client was registered for. */
export interface RegisteredTpp {
  orgId: string;
  softwareId: string;
}

/**
 * The TPP registry's organisations and the clients registered for them (Postgres `tpp_organisation`
 * and `client_tpp`; src/storage/sql/tpp-record-store.ts).
 */
export interface TppRecordStore {
  /** Creates the organisation, or refreshes the name of one already known. */
  saveOrganisation(org: { orgId: string; name: string; directoryIssuer: string }): Promise<void>;
  /** Links a client to its organisation, software and transport certificate; a link already there stays as it is. */
  linkClient(link: RegisteredTpp & { clientId: string; transportThumbprint: string }): Promise<void>;
  /** The organisation and software a client was registered for, if it was registered by Moat. */
  registeredTppOf(clientId: string): Promise<RegisteredTpp | undefined>;
}

/**
 * The TPP registry's rows for a registration: the organisation, its transport certificate in the
 * certificate registry (with its issuer, for revocation checks), and the client.
 */
export async function recordRegisteredTpp(
  records: TppRecordStore,
  registry: CertificateRegistry,
  entry: { clientId: string; ssa: SoftwareStatement; certificate: PresentedCertificate },
): Promise<void> {
  const { ssa, certificate: presented } = entry;
  await records.saveOrganisation({ orgId: ssa.orgId, name: ssa.orgName ?? ssa.orgId, directoryIssuer: ssa.directory.issuer });
  const issuer = issuerOfPresented(presented);
  await registry.register(certificateProfile(presented.certificate), {
    orgId: ssa.orgId,
    usage: 'transport',
    clientId: entry.clientId,
    ...(issuer === undefined ? {} : { issuerPem: issuer.toString() }),
  });
  // Signing certificates the directory vouches for (x5c in the SSA's JWKS) are registered too.
  for (const key of ssa.jwks?.keys ?? []) {
    const chain = (key as { x5c?: unknown }).x5c;
    if (!Array.isArray(chain) || typeof chain[0] !== 'string') continue;
    try {
      const certificate = new X509Certificate(Buffer.from(chain[0], 'base64'));
      const signingIssuer =
        typeof chain[1] === 'string'
          ? new X509Certificate(Buffer.from(chain[1], 'base64'))
          : issuer !== undefined && certificate.checkIssued(issuer) && certificate.verify(issuer.publicKey)
            ? issuer
            : undefined;
      await registry.register(certificateProfile(certificate), {
        orgId: ssa.orgId,
        usage: 'signing',
        clientId: entry.clientId,
        ...(signingIssuer === undefined ? {} : { issuerPem: signingIssuer.toString() }),
      });
    } catch {
      // A key whose x5c does not parse is still usable as a JWK; it is just not in the registry.
    }
  }
  await records.linkClient({ clientId: entry.clientId, orgId: ssa.orgId, softwareId: ssa.softwareId, transportThumbprint: presented.thumbprint });
}

/** The certificate that signed the presented leaf: among what was sent with it, or the trust anchor. */
export function issuerOfPresented(presented: PresentedCertificate): X509Certificate | undefined {
  const candidates = [...presented.chain, ...(presented.verification.trusted ? [presented.verification.anchor] : [])];
  return candidates.find((c) => presented.certificate.checkIssued(c) && presented.certificate.verify(c.publicKey));
}

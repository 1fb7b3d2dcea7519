import { X509Certificate } from 'node:crypto';
import { certificateProfile } from '../certificates/certificate-profile.ts';
import type { CertificateRegistry } from '../certificates/certificate-registry.ts';
import type { SqlClient } from '../storage/sql/sql-client.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import type { SoftwareStatement } from './software-statement.ts';

/**
 * The TPP registry's rows for a registration: the organisation, its transport certificate in the
 * certificate registry (with its issuer, for revocation checks), and the client.
 */
export async function recordRegisteredTpp(
  sql: SqlClient,
  registry: CertificateRegistry,
  entry: { clientId: string; ssa: SoftwareStatement; certificate: PresentedCertificate },
): Promise<void> {
  const { ssa, certificate: presented } = entry;
  await sql.query(
    `INSERT INTO tpp_organisation (org_id, name, directory_issuer, status)
     VALUES ($1, $2, $3, 'Active')
     ON CONFLICT (org_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()`,
    [ssa.orgId, ssa.orgName ?? ssa.orgId, ssa.directory.issuer],
  );
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
  await sql.query(
    `INSERT INTO client_tpp (client_id, org_id, software_id, transport_cert_thumbprint)
     VALUES ($1, $2, $3, $4) ON CONFLICT (client_id) DO NOTHING`,
    [entry.clientId, ssa.orgId, ssa.softwareId, presented.thumbprint],
  );
}

/** The certificate that signed the presented leaf: among what was sent with it, or the trust anchor. */
export function issuerOfPresented(presented: PresentedCertificate): X509Certificate | undefined {
  const candidates = [...presented.chain, ...(presented.verification.trusted ? [presented.verification.anchor] : [])];
  return candidates.find((c) => presented.certificate.checkIssued(c) && presented.certificate.verify(c.publicKey));
}

/** The organisation and software a client was registered for, if it was registered by Moat. */
export async function registeredTppOf(sql: SqlClient, clientId: string): Promise<{ orgId: string; softwareId: string } | undefined> {
  const { rows } = await sql.query<{ org_id: string; software_id: string }>('SELECT org_id, software_id FROM client_tpp WHERE client_id = $1', [clientId]);
  return rows[0] === undefined ? undefined : { orgId: rows[0].org_id, softwareId: rows[0].software_id };
}

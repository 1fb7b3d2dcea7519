import type { SqlClient } from '../storage/sql/sql-client.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { formatDistinguishedName, issuerOf } from '../tls/distinguished-name.ts';
import type { SoftwareStatement } from './software-statement.ts';

/**
 * The TPP registry's first rows: the organisation, its transport certificate and the client. The
 * certificate lifecycle issue extends these tables (QCStatements, revocation, rotation).
 */
export async function recordRegisteredTpp(
  sql: SqlClient,
  entry: { clientId: string; ssa: SoftwareStatement; certificate: PresentedCertificate },
): Promise<void> {
  const { ssa, certificate: presented } = entry;
  const cert = presented.certificate;
  await sql.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO tpp_organisation (org_id, name, directory_issuer, status)
       VALUES ($1, $2, $3, 'Active')
       ON CONFLICT (org_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()`,
      [ssa.orgId, ssa.orgName ?? ssa.orgId, ssa.directory.issuer],
    );
    await tx.query(
      `INSERT INTO tpp_certificate (thumbprint, org_id, subject_dn, issuer_dn, serial, not_before, not_after, pem)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (thumbprint) DO NOTHING`,
      [
        presented.thumbprint, ssa.orgId, formatDistinguishedName(presented.subject), formatDistinguishedName(issuerOf(cert)),
        cert.serialNumber, new Date(cert.validFrom), new Date(cert.validTo), cert.toString(),
      ],
    );
    await tx.query(
      `INSERT INTO client_tpp (client_id, org_id, software_id, transport_cert_thumbprint)
       VALUES ($1, $2, $3, $4)`,
      [entry.clientId, ssa.orgId, ssa.softwareId, presented.thumbprint],
    );
  });
}

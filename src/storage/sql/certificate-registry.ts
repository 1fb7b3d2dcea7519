import type { AuditLog } from '../../audit/audit-log.ts';
import { containsNul } from './postgres-model-store.ts';
import type { SqlClient } from './sql-client.ts';
import type {
  CertificateEvent,
  CertificateRegistry,
  CertificateStatus,
  RegisteredCertificate,
  RevocationSource,
} from '../../certificates/certificate-registry.ts';

interface Row {
  thumbprint: string;
  org_id: string;
  subject_dn: string;
  issuer_dn: string;
  serial: string;
  not_before: Date | string;
  not_after: Date | string;
  pem: string;
  usage: RegisteredCertificate['usage'];
  sans: string[];
  key_type: string | null;
  key_size: number | null;
  organization_identifier: string | null;
  psd2_roles: string[] | null;
  nca_name: string | null;
  nca_id: string | null;
  ocsp_urls: string[];
  crl_urls: string[];
  issuer_pem: string | null;
  status: CertificateStatus;
  revoked_at: Date | string | null;
  revocation_source: RevocationSource | null;
  revocation_reason: string | null;
  last_checked_at: Date | string | null;
  last_check_result: string | null;
  clients: string[] | null;
}

const SELECT = `SELECT c.*, COALESCE((SELECT jsonb_agg(cc.client_id ORDER BY cc.client_id) FROM client_certificate cc WHERE cc.thumbprint = c.thumbprint), '[]'::jsonb) AS clients
  FROM tpp_certificate c`;

function toCertificate(r: Row): RegisteredCertificate {
  const date = (d: Date | string) => new Date(d);
  return {
    thumbprint: r.thumbprint,
    orgId: r.org_id,
    subjectDn: r.subject_dn,
    issuerDn: r.issuer_dn,
    serial: r.serial,
    notBefore: date(r.not_before),
    notAfter: date(r.not_after),
    pem: r.pem,
    usage: r.usage,
    sans: r.sans,
    keyType: r.key_type ?? 'unknown',
    keySize: r.key_size ?? 0,
    ...(r.organization_identifier === null ? {} : { organizationIdentifier: r.organization_identifier }),
    ...(r.psd2_roles === null ? {} : { psd2: { roles: r.psd2_roles, ncaName: r.nca_name ?? '', ncaId: r.nca_id ?? '' } }),
    ocspUrls: r.ocsp_urls,
    crlUrls: r.crl_urls,
    ...(r.issuer_pem === null ? {} : { issuerPem: r.issuer_pem }),
    status: r.status,
    ...(r.revoked_at === null ? {} : { revokedAt: date(r.revoked_at) }),
    ...(r.revocation_source === null ? {} : { revocationSource: r.revocation_source }),
    ...(r.revocation_reason === null ? {} : { revocationReason: r.revocation_reason }),
    ...(r.last_checked_at === null ? {} : { lastCheckedAt: date(r.last_checked_at) }),
    ...(r.last_check_result === null ? {} : { lastCheckResult: r.last_check_result }),
    clients: r.clients ?? [],
  };
}

/** The certificate registry on Postgres (pg or the embedded PGlite). */
export function createSqlCertificateRegistry(sql: SqlClient, audit?: AuditLog): CertificateRegistry {
  const event = (client: SqlClient, thumbprint: string, name: string, detail: Record<string, unknown> = {}) =>
    client.query('INSERT INTO tpp_certificate_event (thumbprint, event, detail) VALUES ($1, $2, $3)', [thumbprint, name, JSON.stringify(detail)]);
  return {
    async register(p, link) {
      let registered = false;
      await sql.transaction(async (tx) => {
        const inserted = await tx.query(
          `INSERT INTO tpp_certificate (thumbprint, org_id, subject_dn, issuer_dn, serial, not_before, not_after, pem, usage, sans, key_type, key_size,
             organization_identifier, psd2_roles, nca_name, nca_id, ocsp_urls, crl_urls, issuer_pem)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
           ON CONFLICT (thumbprint) DO NOTHING`,
          [
            p.thumbprint,
            link.orgId,
            p.subjectDn,
            p.issuerDn,
            p.serial,
            p.notBefore,
            p.notAfter,
            p.pem,
            link.usage,
            JSON.stringify(p.sans),
            p.keyType,
            p.keySize,
            p.organizationIdentifier ?? null,
            p.psd2 === undefined ? null : JSON.stringify(p.psd2.roles),
            p.psd2?.ncaName ?? null,
            p.psd2?.ncaId ?? null,
            JSON.stringify(p.ocspUrls),
            JSON.stringify(p.crlUrls),
            link.issuerPem ?? null,
          ],
        );
        if (inserted.rowCount > 0) await event(tx, p.thumbprint, 'registered', { orgId: link.orgId, usage: link.usage });
        registered = inserted.rowCount > 0;
        if (link.clientId !== undefined) {
          const linked = await tx.query('INSERT INTO client_certificate (client_id, thumbprint) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
            link.clientId,
            p.thumbprint,
          ]);
          if (linked.rowCount > 0) await event(tx, p.thumbprint, 'linked', { clientId: link.clientId });
        }
      });
      if (registered) {
        await audit?.record({
          type: 'certificate.registered',
          actor: 'tpp',
          orgId: link.orgId,
          ...(link.clientId === undefined ? {} : { clientId: link.clientId }),
          subject: p.thumbprint,
          detail: {
            usage: link.usage,
            subjectDn: p.subjectDn,
            notAfter: p.notAfter.toISOString(),
            ...(p.psd2 === undefined ? {} : { psd2Roles: p.psd2.roles }),
          },
        });
      }
    },
    async statusOf(thumbprint) {
      if (containsNul(thumbprint)) return undefined;
      const { rows } = await sql.query<{ status: CertificateStatus; last_check_result: string | null }>(
        'SELECT status, last_check_result FROM tpp_certificate WHERE thumbprint = $1',
        [thumbprint],
      );
      const row = rows[0];
      return row === undefined ? undefined : { status: row.status, ...(row.last_check_result === null ? {} : { lastCheckResult: row.last_check_result }) };
    },
    async find(thumbprint) {
      if (containsNul(thumbprint)) return undefined;
      const { rows } = await sql.query<Row>(`${SELECT} WHERE c.thumbprint = $1`, [thumbprint]);
      return rows[0] === undefined ? undefined : toCertificate(rows[0]);
    },
    async list(filter = {}) {
      if (containsNul(...[filter.orgId, filter.clientId].filter((v): v is string => v !== undefined))) return [];
      const { rows } = await sql.query<Row>(
        `${SELECT} WHERE ($1::text IS NULL OR c.org_id = $1) AND ($2::text IS NULL OR c.status = $2)
           AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM client_certificate cc WHERE cc.thumbprint = c.thumbprint AND cc.client_id = $3))
         ORDER BY c.org_id, c.not_after`,
        [filter.orgId ?? null, filter.status ?? null, filter.clientId ?? null],
      );
      return rows.map(toCertificate);
    },
    async revoke(thumbprint, by) {
      if (containsNul(thumbprint, by.reason)) return false;
      const changed = await sql.transaction(async (tx) => {
        const { rowCount } = await tx.query(
          `UPDATE tpp_certificate SET status = 'revoked', revoked_at = $2, revocation_source = $3, revocation_reason = $4
           WHERE thumbprint = $1 AND status <> 'revoked'`,
          [thumbprint, by.at ?? new Date(), by.source, by.reason],
        );
        if (rowCount > 0) await event(tx, thumbprint, 'revoked', { source: by.source, reason: by.reason });
        return rowCount > 0;
      });
      if (changed) {
        await audit?.record({
          type: 'certificate.revoked',
          actor: by.source === 'operator' ? 'operator' : 'system',
          subject: thumbprint,
          detail: { source: by.source, reason: by.reason },
        });
      }
      return changed;
    },
    async retire(thumbprint, reason) {
      if (containsNul(thumbprint, reason)) return false;
      const changed = await sql.transaction(async (tx) => {
        const { rowCount } = await tx.query("UPDATE tpp_certificate SET status = 'retired', retired_at = now() WHERE thumbprint = $1 AND status = 'active'", [
          thumbprint,
        ]);
        if (rowCount > 0) await event(tx, thumbprint, 'retired', { reason });
        return rowCount > 0;
      });
      if (changed) await audit?.record({ type: 'certificate.retired', actor: 'operator', subject: thumbprint, detail: { reason } });
      return changed;
    },
    async recordCheck(thumbprint, result) {
      await sql.transaction(async (tx) => {
        const { rows } = await tx.query<{ last_check_result: string | null }>(
          'SELECT last_check_result FROM tpp_certificate WHERE thumbprint = $1 FOR UPDATE',
          [thumbprint],
        );
        await tx.query('UPDATE tpp_certificate SET last_checked_at = now(), last_check_result = $2 WHERE thumbprint = $1', [thumbprint, result]);
        // History keeps changes, not every periodic "still good".
        if (rows[0] !== undefined && rows[0].last_check_result !== result) await event(tx, thumbprint, 'checked', { result });
      });
    },
    async recordEvent(thumbprint, name, detail) {
      await event(sql, thumbprint, name, detail);
    },
    async expiring(before) {
      const { rows } = await sql.query<Row>(`${SELECT} WHERE c.status = 'active' AND c.not_after <= $1 ORDER BY c.not_after`, [before]);
      return rows.map(toCertificate);
    },
    async events(thumbprint) {
      if (containsNul(thumbprint)) return [];
      const { rows } = await sql.query<{ thumbprint: string; event: string; detail: Record<string, unknown>; at: Date | string }>(
        'SELECT thumbprint, event, detail, at FROM tpp_certificate_event WHERE thumbprint = $1 ORDER BY id',
        [thumbprint],
      );
      return rows.map((r): CertificateEvent => ({ thumbprint: r.thumbprint, event: r.event, detail: r.detail, at: new Date(r.at) }));
    },
    async organisations() {
      const { rows } = await sql.query<{
        org_id: string;
        name: string;
        directory_issuer: string;
        status: string;
        clients: { clientId: string; softwareId: string }[];
      }>(
        `SELECT o.org_id, o.name, o.directory_issuer, o.status,
           COALESCE((SELECT jsonb_agg(jsonb_build_object('clientId', t.client_id, 'softwareId', t.software_id) ORDER BY t.client_id) FROM client_tpp t WHERE t.org_id = o.org_id), '[]'::jsonb) AS clients
         FROM tpp_organisation o ORDER BY o.org_id`,
      );
      return rows.map((r) => ({ orgId: r.org_id, name: r.name, directoryIssuer: r.directory_issuer, status: r.status, clients: r.clients }));
    },
  };
}

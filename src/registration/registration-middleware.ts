import type { IncomingMessage } from 'node:http';
import type { Middleware } from 'koa';
import type { MoatConfig } from '../config/schema.ts';
import { readJsonObject } from '../http/read-body.ts';
import { OAuthError } from '../http/oauth-error.ts';
import type { Logger } from '../observability/logger.ts';
import type { SqlClient } from '../storage/sql/sql-client.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { formatDistinguishedName, issuerOf } from '../tls/distinguished-name.ts';
import type { TrustedDirectory } from './directories.ts';
import { markRegistrationApproved } from './approval.ts';
import { registrationMetadata } from './registration-policy.ts';
import { verifySoftwareStatement, type SoftwareStatement } from './software-statement.ts';
import { issuerOfPresented, recordRegisteredTpp } from './tpp-records.ts';
import { certificateProfile, type CertificateProfile } from '../certificates/certificate-profile.ts';
import type { CertificateRegistry } from '../certificates/certificate-registry.ts';
import { SOFTWARE_ROLE_FOR_PSD2, type Psd2Role } from '../certificates/psd2-qc-statement.ts';
import type { RevocationChecker } from '../certificates/revocation-checker.ts';

interface Deps {
  config: MoatConfig;
  directories: ReadonlyMap<string, TrustedDirectory>;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  sql: SqlClient;
  registry: CertificateRegistry;
  /** Asks the certificate's CA (OCSP, then CRL) before a client is created with it. */
  checker: RevocationChecker;
  failMode: 'open' | 'closed';
  logger: Logger;
}

/**
 * RFC 7591 registration with a software statement, in front of oidc-provider's registration
 * endpoint: verify the SSA, check the transport certificate and the requested metadata against it,
 * then hand oidc-provider the metadata Moat allows. After a successful registration the TPP, its
 * certificate and the client are recorded in the registry.
 */
/**
 * oidc-provider's router matches its paths case-insensitively and with a trailing slash
 * (`/Register/` is the registration endpoint too), so this guard matches the same way; the
 * provider's metadata validator refuses any registration this middleware did not approve, should
 * the two ever disagree.
 */
const REGISTRATION_PATH = /^\/register\/*$/i;

export function createRegistrationMiddleware(deps: Deps): Middleware {
  return async (ctx, next) => {
    if (!REGISTRATION_PATH.test(ctx.path) || ctx.method !== 'POST') return next();
    if (!ctx.is('application/json')) {
      throw new OAuthError('invalid_request', 'registration requests are application/json with a software_statement');
    }
    const body = await readJsonObject(ctx.req);
    const verified = await verifySoftwareStatement(body.software_statement, deps.directories);
    const presented = deps.clientCertificate(ctx.req);
    const ssa = presented === undefined ? verified : withCertificateRoles(verified, certificateProfile(presented.certificate));
    const metadata = registrationMetadata(body, ssa, presented, deps.config);
    await assertNotRevoked(deps, presented!);
    // oidc-provider reads an already-parsed body from ctx.request.body.
    (ctx.request as { body?: unknown }).body = metadata;
    markRegistrationApproved(ctx.req);
    await next();
    const created = ctx.body as { client_id?: string } | undefined;
    if (ctx.status === 201 && typeof created?.client_id === 'string') {
      await recordRegisteredTpp(deps.sql, deps.registry, { clientId: created.client_id, ssa, certificate: presented! });
      deps.logger.info({
        event: 'tpp.registered', clientId: created.client_id, orgId: ssa.orgId, softwareId: ssa.softwareId,
        certificateThumbprint: presented!.thumbprint, issuer: formatDistinguishedName(issuerOf(presented!.certificate)),
      }, 'TPP client registered');
    }
  };
}

/**
 * Roles from an eIDAS certificate's PSD2 QCStatement limit what the SSA grants: a TPP the regulator
 * authorised only as an AISP cannot register for payments, whatever its software statement says.
 */
export function withCertificateRoles(ssa: SoftwareStatement, profile: CertificateProfile): SoftwareStatement {
  if (profile.psd2 === undefined) return ssa;
  const authorised = new Set(profile.psd2.roles.map((r) => SOFTWARE_ROLE_FOR_PSD2[r as Psd2Role]).filter(Boolean));
  return { ...ssa, roles: ssa.roles.filter((role) => authorised.has(role)) };
}

/** A certificate revoked in the registry or by its CA never registers a client (fail-closed when unknown, if configured). */
async function assertNotRevoked(deps: Deps, presented: PresentedCertificate): Promise<void> {
  const known = await deps.registry.statusOf(presented.thumbprint);
  if (known !== undefined && known.status !== 'active') {
    throw new OAuthError('invalid_client', `the transport certificate has been ${known.status}; register with a current certificate`);
  }
  const issuer = issuerOfPresented(presented);
  if (issuer === undefined) return;
  const profile = certificateProfile(presented.certificate);
  const verdict = await deps.checker.check(presented.certificate, issuer, profile);
  if (verdict.status === 'revoked') throw new OAuthError('invalid_client', `the transport certificate is revoked: ${verdict.detail}`);
  if (verdict.status === 'unknown' && deps.failMode === 'closed') {
    throw new OAuthError('invalid_client', `the revocation status of the transport certificate cannot be established (${verdict.detail})`);
  }
}

export type { SoftwareStatement };

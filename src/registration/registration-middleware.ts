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
import { recordRegisteredTpp } from './tpp-records.ts';

interface Deps {
  config: MoatConfig;
  directories: ReadonlyMap<string, TrustedDirectory>;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  sql: SqlClient;
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
    const ssa = await verifySoftwareStatement(body.software_statement, deps.directories);
    const presented = deps.clientCertificate(ctx.req);
    const metadata = registrationMetadata(body, ssa, presented, deps.config);
    // oidc-provider reads an already-parsed body from ctx.request.body.
    (ctx.request as { body?: unknown }).body = metadata;
    markRegistrationApproved(ctx.req);
    await next();
    const created = ctx.body as { client_id?: string } | undefined;
    if (ctx.status === 201 && typeof created?.client_id === 'string') {
      await recordRegisteredTpp(deps.sql, { clientId: created.client_id, ssa, certificate: presented! });
      deps.logger.info({
        event: 'tpp.registered', clientId: created.client_id, orgId: ssa.orgId, softwareId: ssa.softwareId,
        certificateThumbprint: presented!.thumbprint, issuer: formatDistinguishedName(issuerOf(presented!.certificate)),
      }, 'TPP client registered');
    }
  };
}

export type { SoftwareStatement };

import type { IncomingMessage } from 'node:http';
import type { Middleware, ParameterizedContext } from 'koa';
import type Provider from 'oidc-provider';
import type { AuditLog } from '../audit/audit-log.ts';
import { certificateProfile, type CertificateProfile } from '../certificates/certificate-profile.ts';
import type { CertificateRegistry } from '../certificates/certificate-registry.ts';
import { SOFTWARE_ROLE_FOR_PSD2, type Psd2Role } from '../certificates/psd2-qc-statement.ts';
import type { RevocationChecker } from '../certificates/revocation-checker.ts';
import type { MoatConfig } from '../config/schema.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { readJsonObject, readText } from '../http/read-body.ts';
import { unstorableText } from '../http/storable-text.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { Logger } from '../observability/logger.ts';
import { PROVIDER_BODY } from './internals.ts';
import type { ModelStore } from '../kernel/model-store.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { formatDistinguishedName, issuerOf } from '../pki/distinguished-name.ts';
import type { TrustedDirectory } from '../registration/directories.ts';
import { markRegistrationApproved } from '../registration/approval.ts';
import { registrationMetadata } from '../registration/registration-policy.ts';
import { verifySignedRegistrationRequest } from '../registration/signed-registration-request.ts';
import { verifySoftwareStatement, type SoftwareStatement } from '../registration/software-statement.ts';
import { issuerOfPresented, recordRegisteredTpp, type TppRecordStore } from '../registration/tpp-records.ts';

interface Deps {
  config: MoatConfig;
  provider: Provider;
  directories: ReadonlyMap<string, TrustedDirectory>;
  clientCertificate: (req: IncomingMessage) => PresentedCertificate | undefined;
  tppRecords: TppRecordStore;
  registry: CertificateRegistry;
  /** Asks the certificate's CA (OCSP, then CRL) before a client is created or updated with it. */
  checker: RevocationChecker;
  failMode: 'open' | 'closed';
  consents: ConsentService;
  /** Where signed requests' jti values are remembered until they expire. */
  replay: ModelStore;
  audit?: AuditLog;
  logger: Logger;
}

type Ctx = ParameterizedContext;

/*
 * Dynamic client registration in front of oidc-provider's endpoints: RFC 7591 registration and
 * RFC 7592 management. Moat decides what may be registered (the software statement, the transport
 * certificate, the metadata policy); oidc-provider stores the client and issues the registration
 * access token. Every update re-runs every check.
 *
 * oidc-provider's router matches paths case-insensitively and with a trailing slash (`/Register/`
 * is the registration endpoint too), so these guards match the same way; the provider's metadata
 * validator refuses any registration or update this middleware did not approve, should the two
 * ever disagree.
 */
const REGISTRATION_PATH = /^\/register\/*$/i;
const CLIENT_PATH = /^\/register\/([^/]+)\/*$/i;

export function createRegistrationMiddleware(deps: Deps): Middleware {
  return async (ctx, next) => {
    if (REGISTRATION_PATH.test(ctx.path) && ctx.method === 'POST') return register(ctx, next, deps);
    const client = CLIENT_PATH.exec(ctx.path);
    if (client !== null && ctx.method === 'PUT') return update(ctx, next, deps, clientIdIn(client[1]!));
    if (client !== null && ctx.method === 'DELETE') return remove(ctx, next, deps, clientIdIn(client[1]!));
    return next();
  };
}

/** The client id of a management path; a segment that is not percent-encoded UTF-8 names no client. */
function clientIdIn(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new OAuthError('invalid_request', 'the client id in the path is not percent-encoded UTF-8 (RFC 3986 §2.1)');
  }
}

/** RFC 7591 §3.1: a JSON body with a software_statement, or the same as a signed JWT. */
async function readRegistrationRequest(ctx: Ctx, deps: Deps): Promise<{ body: Record<string, unknown>; ssa: SoftwareStatement }> {
  if (ctx.is('application/jwt')) {
    const jwt = (await readText(ctx.req, 'invalid_client_metadata')).trim();
    // Its claims, the software statement's included, are metadata to store.
    const problem = unstorableText(jwt);
    if (problem !== undefined) throw new OAuthError('invalid_client_metadata', problem);
    const verified = await verifySignedRegistrationRequest(jwt, { issuer: deps.config.issuer, directories: deps.directories, replay: deps.replay });
    // oidc-provider accepts only JSON on its registration endpoints; what it is handed from here on
    // is the verified request's metadata as JSON (set on ctx.request.body below).
    ctx.req.headers['content-type'] = 'application/json';
    return verified;
  }
  if (!ctx.is('application/json')) {
    throw new OAuthError('invalid_request', 'registration requests are application/json with a software_statement, or a signed application/jwt');
  }
  const body = await readJsonObject(ctx.req, 'invalid_client_metadata');
  return { body, ssa: await verifySoftwareStatement(body.software_statement, deps.directories) };
}

/** The checks every registration and update runs, in order; returns the metadata to store. */
async function approvedMetadata(ctx: Ctx, deps: Deps): Promise<{ metadata: Record<string, unknown>; ssa: SoftwareStatement; presented: PresentedCertificate }> {
  const { body, ssa: verified } = await readRegistrationRequest(ctx, deps);
  const presented = deps.clientCertificate(ctx.req);
  const ssa = presented === undefined ? verified : withCertificateRoles(verified, certificateProfile(presented.certificate));
  const metadata = await registrationMetadata(body, ssa, presented, deps.config);
  await assertNotRevoked(deps, presented!);
  return { metadata, ssa, presented: presented! };
}

async function register(ctx: Ctx, next: () => Promise<unknown>, deps: Deps): Promise<void> {
  const { metadata, ssa, presented } = await approvedMetadata(ctx, deps);
  PROVIDER_BODY.handOn(ctx, metadata);
  markRegistrationApproved(ctx.req);
  await next();
  const created = ctx.body as { client_id?: string } | undefined;
  if (ctx.status === 201 && typeof created?.client_id === 'string') {
    await recordRegisteredTpp(deps.tppRecords, deps.registry, { clientId: created.client_id, ssa, certificate: presented });
    await deps.audit?.record({
      type: 'client.registered',
      actor: 'tpp',
      actorId: ssa.softwareId,
      clientId: created.client_id,
      orgId: ssa.orgId,
      subject: created.client_id,
      detail: { softwareId: ssa.softwareId, directory: ssa.directory.issuer, roles: ssa.roles, certificate: presented.thumbprint },
    });
    deps.logger.info(
      {
        event: 'tpp.registered',
        clientId: created.client_id,
        orgId: ssa.orgId,
        softwareId: ssa.softwareId,
        certificateThumbprint: presented.thumbprint,
        issuer: formatDistinguishedName(issuerOf(presented.certificate)),
      },
      'TPP client registered',
    );
  }
}

/**
 * RFC 7592 §2.2 update. Only with the client's registration access token (checked here first, so
 * nothing is read for a caller without it); the software statement must be the same software of the
 * same organisation, and the presented certificate is the one the update is checked against — a
 * client cannot widen its subject DN to a certificate it does not hold. A new certificate of the
 * same subject presented here is registered beside the current one: that is how a TPP rotates.
 */
async function update(ctx: Ctx, next: () => Promise<unknown>, deps: Deps, clientId: string): Promise<void> {
  if (!(await holdsRegistrationAccessToken(ctx, deps, clientId))) return void (await next());
  const { metadata, ssa, presented } = await approvedMetadata(ctx, deps);
  const existing = await deps.tppRecords.registeredTppOf(clientId);
  if (existing !== undefined && (existing.softwareId !== ssa.softwareId || existing.orgId !== ssa.orgId)) {
    throw new OAuthError(
      'invalid_software_statement',
      `this client is software ${existing.softwareId} of organisation ${existing.orgId}; the software statement is for ${ssa.softwareId} of ${ssa.orgId}`,
    );
  }
  const current = await deps.provider.Client.find(clientId);
  const method = current?.metadata().token_endpoint_auth_method;
  if (method !== undefined && metadata.token_endpoint_auth_method !== method) {
    throw new OAuthError('invalid_client_metadata', `token_endpoint_auth_method cannot change from ${method} in an update; register a new client`);
  }
  PROVIDER_BODY.handOn(ctx, { ...metadata, client_id: clientId });
  markRegistrationApproved(ctx.req);
  await next();
  if (ctx.status === 200) {
    await recordRegisteredTpp(deps.tppRecords, deps.registry, { clientId, ssa, certificate: presented });
    await deps.audit?.record({
      type: 'client.updated',
      actor: 'tpp',
      actorId: ssa.softwareId,
      clientId,
      orgId: ssa.orgId,
      subject: clientId,
      detail: { certificate: presented.thumbprint },
    });
    deps.logger.info({ event: 'tpp.updated', clientId, orgId: ssa.orgId, certificateThumbprint: presented.thumbprint }, 'TPP client registration updated');
  }
}

/** RFC 7592 §2.3 delete: the client goes, and with it every consent and every token it holds. */
async function remove(ctx: Ctx, next: () => Promise<unknown>, deps: Deps, clientId: string): Promise<void> {
  await next();
  if (ctx.status !== 204) return;
  const ended = await deps.consents.revokeAllForClient(clientId, 'the client was deleted by its owner (RFC 7592)');
  const tpp = await deps.tppRecords.registeredTppOf(clientId);
  await deps.audit?.record({
    type: 'client.deleted',
    actor: 'tpp',
    clientId,
    ...(tpp === undefined ? {} : { orgId: tpp.orgId }),
    subject: clientId,
    detail: { consentsRevoked: ended },
  });
  deps.logger.info({ event: 'tpp.deleted', clientId, consentsRevoked: ended }, 'TPP client deleted; its consents and tokens are revoked');
}

async function holdsRegistrationAccessToken(ctx: Ctx, deps: Deps, clientId: string): Promise<boolean> {
  const [scheme, value] = ctx.get('authorization').split(' ');
  if (scheme?.toLowerCase() !== 'bearer' || value === undefined) return false;
  const token = await deps.provider.RegistrationAccessToken.find(value);
  return token !== undefined && !token.isExpired && token.clientId === clientId;
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

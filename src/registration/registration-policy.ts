import { AUTHORIZATION_DETAILS_TYPES, ROLE_FOR_TYPE } from '../consents/authorization-details.ts';
import type { MoatConfig } from '../config/schema.ts';
import { OAuthError } from '../http/oauth-error.ts';
import { CLIENT_AUTH_METHODS } from '../provider/create-provider.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import {
  describeDifference, distinguishedNamesEqual, formatDistinguishedName, getAttribute, parseDistinguishedName,
} from '../tls/distinguished-name.ts';
import type { SoftwareStatement } from './software-statement.ts';

/*
 * What a TPP may register, given the software statement its directory signed and the transport
 * certificate it presented. Pure: the request and the evidence in, client metadata (or an RFC 7591
 * error precise enough to fix the request) out.
 */

const ALLOWED_GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials']);
/** Scopes every client may have whatever its roles. */
const BASE_SCOPES = ['openid', 'offline_access'];

export function registrationMetadata(
  request: Record<string, unknown>,
  ssa: SoftwareStatement,
  presented: PresentedCertificate | undefined,
  config: MoatConfig,
): Record<string, unknown> {
  assertTransportCertificate(presented, ssa);

  const redirectUris = stringArray(request, 'redirect_uris') ?? ssa.redirectUris;
  for (const uri of redirectUris) {
    if (!ssa.redirectUris.includes(uri)) {
      throw new OAuthError('invalid_redirect_uri', `redirect_uri ${uri} is not among the software statement's software_redirect_uris`);
    }
    // FAPI 2.0 SP §5.3.2.2: https redirect URIs only.
    if (!uri.startsWith('https://')) throw new OAuthError('invalid_redirect_uri', `redirect_uri ${uri} must use https`);
  }

  const method = optionalString(request, 'token_endpoint_auth_method') ?? 'tls_client_auth';
  if (!(CLIENT_AUTH_METHODS as readonly string[]).includes(method)) {
    throw new OAuthError('invalid_client_metadata', `token_endpoint_auth_method must be one of ${CLIENT_AUTH_METHODS.join(', ')} (FAPI 2.0 SP §5.3.2.1)`);
  }
  const metadata: Record<string, unknown> = { ...request, token_endpoint_auth_method: method, redirect_uris: redirectUris };
  delete metadata.software_statement;

  if (method === 'tls_client_auth') {
    const requested = optionalString(request, 'tls_client_auth_subject_dn');
    if (requested === undefined) {
      throw new OAuthError('invalid_client_metadata', 'tls_client_auth requires tls_client_auth_subject_dn (the subject DN of the transport certificate)');
    }
    let expected;
    try {
      expected = parseDistinguishedName(requested);
    } catch (err) {
      throw new OAuthError('invalid_client_metadata', `tls_client_auth_subject_dn is not an RFC 4514 distinguished name: ${(err as Error).message}`);
    }
    if (!distinguishedNamesEqual(expected, presented!.subject)) {
      const diff = describeDifference(expected, presented!.subject);
      throw new OAuthError('invalid_client_metadata', `tls_client_auth_subject_dn does not match the presented certificate's subject ${formatDistinguishedName(presented!.subject)}${diff === undefined ? '' : ` (${diff})`}`);
    }
  }

  const allowedScopes = scopesForRoles(ssa.roles, config);
  const scopeParam = optionalString(request, 'scope');
  const scopes = scopeParam === undefined ? allowedScopes : scopeParam.split(' ').filter(Boolean);
  for (const scope of scopes) {
    if (!allowedScopes.includes(scope)) {
      const needed = config.scopes[scope]?.roles;
      throw new OAuthError('invalid_client_metadata', needed === undefined
        ? `scope ${scope} is not offered by this server`
        : `scope ${scope} requires one of the roles ${needed.join(', ')}; the software statement grants ${ssa.roles.join(', ')}`);
    }
  }
  metadata.scope = scopes.join(' ');

  // RFC 9396 §10: which authorization_details types the client may use follows from its roles.
  const allowedTypes = AUTHORIZATION_DETAILS_TYPES.filter((type) => ssa.roles.includes(ROLE_FOR_TYPE[type]));
  const detailTypes = stringArray(request, 'authorization_details_types') ?? allowedTypes;
  for (const type of detailTypes) {
    if (!(allowedTypes as string[]).includes(type)) {
      throw new OAuthError('invalid_client_metadata', (AUTHORIZATION_DETAILS_TYPES as readonly string[]).includes(type)
        ? `authorization_details_types ${type} requires the ${ROLE_FOR_TYPE[type as keyof typeof ROLE_FOR_TYPE]} role; the software statement grants ${ssa.roles.join(', ')}`
        : `authorization_details_types ${type} is not supported (supported: ${AUTHORIZATION_DETAILS_TYPES.join(', ')})`);
    }
  }
  metadata.authorization_details_types = detailTypes;

  const grantTypes = stringArray(request, 'grant_types') ?? ['authorization_code', 'refresh_token', 'client_credentials'];
  const badGrant = grantTypes.find((g) => !ALLOWED_GRANT_TYPES.has(g));
  if (badGrant !== undefined) throw new OAuthError('invalid_client_metadata', `grant_type ${badGrant} is not allowed (allowed: ${[...ALLOWED_GRANT_TYPES].join(', ')})`);
  metadata.grant_types = grantTypes;
  metadata.response_types = stringArray(request, 'response_types') ?? ['code'];

  // RFC 8705 §3 by default; RFC 9449 DPoP when the client registers for it. Never neither.
  const dpop = request.dpop_bound_access_tokens === true;
  metadata.dpop_bound_access_tokens = dpop;
  metadata.tls_client_certificate_bound_access_tokens = !dpop;

  // The client's keys are the ones its directory vouches for.
  if (request.jwks !== undefined || request.jwks_uri !== undefined) {
    throw new OAuthError('invalid_client_metadata', 'jwks and jwks_uri come from the software statement (software_jwks / software_jwks_endpoint); do not send them');
  }
  delete metadata.jwks;
  delete metadata.jwks_uri;
  if (ssa.jwks !== undefined) metadata.jwks = ssa.jwks;
  else if (ssa.jwksUri !== undefined) metadata.jwks_uri = ssa.jwksUri;
  else if (method === 'private_key_jwt') {
    throw new OAuthError('invalid_software_statement', 'private_key_jwt needs the TPP keys in the software statement (software_jwks or software_jwks_endpoint)');
  }

  metadata.software_id = ssa.softwareId;
  metadata.org_id = ssa.orgId;
  metadata.software_roles = ssa.roles;
  if (ssa.orgName !== undefined) metadata.org_name = ssa.orgName;
  metadata.client_name = ssa.clientName ?? optionalString(request, 'client_name') ?? ssa.softwareId;
  if (typeof ssa.claims.software_version === 'string') metadata.software_version = ssa.claims.software_version;
  return metadata;
}

/** Registration happens over mTLS with a trusted transport certificate of the SSA's organisation. */
function assertTransportCertificate(presented: PresentedCertificate | undefined, ssa: SoftwareStatement): void {
  if (presented === undefined) {
    throw new OAuthError('invalid_client', 'registration requires mutual TLS: present the transport certificate the directory issued to your organisation');
  }
  if (!presented.verification.trusted) {
    throw new OAuthError('invalid_client', `the transport certificate is not trusted: ${presented.verification.description}`);
  }
  const certOrg = getAttribute(presented.subject, ssa.directory.orgIdAttribute);
  const expected = `${ssa.directory.orgIdPrefix}${ssa.orgId}`;
  if (certOrg !== expected) {
    throw new OAuthError('unapproved_software_statement', `the transport certificate belongs to organisation ${certOrg === undefined ? '(none)' : `"${certOrg}"`} (${ssa.directory.orgIdAttribute}) but the software statement's org_id is "${ssa.orgId}"${expected === ssa.orgId ? '' : ` (expected "${expected}" in the certificate)`}`);
  }
}

export function scopesForRoles(roles: readonly string[], config: MoatConfig): string[] {
  return [...BASE_SCOPES, ...Object.entries(config.scopes).filter(([, s]) => s.roles.some((r) => roles.includes(r))).map(([name]) => name)];
}

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new OAuthError('invalid_client_metadata', `${key} must be a string`);
  return value;
}

function stringArray(body: Record<string, unknown>, key: string): string[] | undefined {
  const value = body[key];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new OAuthError('invalid_client_metadata', `${key} must be an array of strings`);
  }
  return value as string[];
}

import { decodeJwt, errors as joseErrors, jwtVerify } from 'jose';
import { SIGNING_ALGORITHMS } from '../config/schema.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { TrustedDirectory } from './directories.ts';

/** The claims Moat relies on from a software statement assertion (UK OB / Open Finance Brasil style). */
export interface SoftwareStatement {
  directory: TrustedDirectory;
  softwareId: string;
  orgId: string;
  orgName?: string;
  clientName?: string;
  roles: string[];
  redirectUris: string[];
  /** The TPP's public keys, vouched for by the directory (not used to verify the SSA itself). */
  jwks?: { keys: object[] };
  jwksUri?: string;
  claims: Record<string, unknown>;
}

/** FAPI 2.0 SP §5.3.2.1 (clock skew): an `iat` or `nbf` up to 10 s in the future is the clocks', not the issuer's. */
const CLOCK_SKEW_SECONDS = 10;

/**
 * Verifies an SSA against the keys of the directory named by its `iss` — only keys configured for
 * that directory, never a `jwk`/`x5c`/`jku` carried in the statement (RFC 7591 §2.3). A statement
 * must be fresh: `iat` present and not in the future, within the directory's maximum age, and
 * with an `exp` where the directory requires one (RFC 7519 §4.1.4, §4.1.6).
 */
export async function verifySoftwareStatement(ssa: unknown, directories: ReadonlyMap<string, TrustedDirectory>, now = new Date()): Promise<SoftwareStatement> {
  if (typeof ssa !== 'string' || ssa === '') {
    throw new OAuthError('invalid_software_statement', 'software_statement is required and must be a signed JWT');
  }
  let unverified: Record<string, unknown>;
  try {
    unverified = decodeJwt(ssa);
  } catch {
    throw new OAuthError('invalid_software_statement', 'software_statement is not a JWT');
  }
  const directory = typeof unverified.iss === 'string' ? directories.get(unverified.iss) : undefined;
  if (directory === undefined) {
    throw new OAuthError('unapproved_software_statement', `software_statement issuer "${String(unverified.iss)}" is not a directory this server trusts`);
  }
  let claims: Record<string, unknown>;
  try {
    ({ payload: claims } = await jwtVerify(ssa, directory.keys, {
      issuer: directory.issuer,
      algorithms: [...SIGNING_ALGORITHMS],
      currentDate: now,
      clockTolerance: CLOCK_SKEW_SECONDS,
      requiredClaims: directory.requireSsaExp ? ['iat', 'exp'] : ['iat'],
      maxTokenAge: directory.maxSsaAgeSeconds,
    }));
  } catch (err) {
    throw new OAuthError('invalid_software_statement', describeJoseFailure(err, directory), { cause: err });
  }
  // jose compares iat with the clock only when it checks an age; a statement from the future is never fresh.
  if ((claims.iat as number) > now.getTime() / 1000 + CLOCK_SKEW_SECONDS) {
    throw new OAuthError('invalid_software_statement', FUTURE_IAT);
  }
  const softwareId = requiredString(claims, 'software_id');
  const orgId = requiredString(claims, 'org_id');
  // The directory's role names in Moat's terms (Brazil's DADOS is an AISP, PAGTO a PISP).
  const roles = [...new Set(requiredStringArray(claims, 'software_roles').map((role) => directory.roleMap[role] ?? role))];
  const redirectUris = requiredStringArray(claims, 'software_redirect_uris');
  if (claims.org_status !== undefined && claims.org_status !== 'Active') {
    throw new OAuthError('unapproved_software_statement', `the organisation's status in ${directory.name} is "${String(claims.org_status)}", not Active`);
  }
  const jwks = claims.software_jwks;
  const jwksUri = claims.software_jwks_uri ?? claims.software_jwks_endpoint;
  const orgName = claims.org_name ?? claims.organisation_name;
  return {
    directory,
    softwareId,
    orgId,
    roles,
    redirectUris,
    claims,
    ...(typeof orgName === 'string' ? { orgName } : {}),
    ...(typeof claims.software_client_name === 'string' ? { clientName: claims.software_client_name } : {}),
    ...(isJwks(jwks) ? { jwks } : {}),
    ...(typeof jwksUri === 'string' ? { jwksUri } : {}),
  };
}

const FUTURE_IAT = 'software_statement is dated in the future (iat); a directory issues statements for now';

function describeJoseFailure(err: unknown, directory: TrustedDirectory): string {
  if (err instanceof joseErrors.JWTExpired) {
    return err.claim === 'iat'
      ? `software_statement is older than the ${directory.maxSsaAgeSeconds} s ${directory.name} allows (iat); fetch a fresh one`
      : 'software_statement has expired';
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'iat' && err.reason === 'missing') return 'software_statement lacks iat, the time the directory issued it';
    if (err.claim === 'exp' && err.reason === 'missing') return `software_statement lacks exp; statements of ${directory.name} must say when they expire`;
    if (err.claim === 'iat' && err.reason === 'check_failed') return FUTURE_IAT;
    if (err.reason === 'invalid') return `software_statement ${err.claim} must be a NumericDate (seconds since the epoch)`;
    return `software_statement claim check failed: ${err.claim} ${err.reason}`;
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey) return `software_statement is signed with a key ${directory.name} does not publish`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return `software_statement signature does not verify with ${directory.name}'s keys`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'software_statement must be signed with PS256, ES256 or EdDSA';
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JOSEError) return `software_statement could not be verified: ${err.message}`;
  return 'software_statement could not be verified';
}

function requiredString(claims: Record<string, unknown>, name: string): string {
  const value = claims[name];
  if (typeof value !== 'string' || value === '') throw new OAuthError('invalid_software_statement', `software_statement lacks ${name}`);
  return value;
}

function requiredStringArray(claims: Record<string, unknown>, name: string): string[] {
  const value = claims[name];
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string')) {
    throw new OAuthError('invalid_software_statement', `software_statement ${name} must be a non-empty array of strings`);
  }
  return value as string[];
}

function isJwks(value: unknown): value is { keys: object[] } {
  return typeof value === 'object' && value !== null && Array.isArray((value as { keys?: unknown }).keys);
}

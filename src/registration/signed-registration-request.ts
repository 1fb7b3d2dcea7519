import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';
import { SIGNING_ALGORITHMS } from '../config/schema.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import type { ModelStore } from '../kernel/model-store.ts';
import type { TrustedDirectory } from './directories.ts';
import { verifySoftwareStatement, type SoftwareStatement } from './software-statement.ts';

/*
 * A registration request sent as a signed JWT (`Content-Type: application/jwt`, UK OBIE DCR 3.x):
 * the TPP signs its metadata, software statement included, with a key its directory vouches for
 * (the SSA's software_jwks or software_jwks_endpoint). Verified: signature, `iss` = the SSA's
 * software_id, `aud` = this issuer, `iat`/`exp` present and current, a `jti` never seen before.
 */

/** How long a signed request may be valid at most: it is a one-shot message, not a credential. */
const MAX_REQUEST_LIFETIME_SECONDS = 3600;
const REPLAY_MODEL = 'RegistrationRequestJti';
const JWT_CLAIMS = ['iss', 'aud', 'iat', 'exp', 'jti', 'nbf', 'sub'];

export async function verifySignedRegistrationRequest(
  jwt: string,
  deps: { issuer: string; directories: ReadonlyMap<string, TrustedDirectory>; replay: ModelStore },
): Promise<{ body: Record<string, unknown>; ssa: SoftwareStatement }> {
  let unverified: Record<string, unknown>;
  try {
    unverified = decodeJwt(jwt);
  } catch {
    throw new OAuthError('invalid_request', 'the registration request is not a JWT (Content-Type application/jwt takes a signed JWT)');
  }
  // The software statement inside names the directory and the TPP's keys.
  const ssa = await verifySoftwareStatement(unverified.software_statement, deps.directories);
  const keys =
    ssa.jwks !== undefined ? createLocalJWKSet(ssa.jwks as JSONWebKeySet) : ssa.jwksUri !== undefined ? createRemoteJWKSet(new URL(ssa.jwksUri)) : undefined;
  if (keys === undefined) {
    throw new OAuthError(
      'invalid_software_statement',
      'the software statement names no keys (software_jwks or software_jwks_endpoint) to verify the signed registration request with',
    );
  }
  let claims: Record<string, unknown>;
  try {
    ({ payload: claims } = await jwtVerify(jwt, keys, {
      algorithms: [...SIGNING_ALGORITHMS],
      issuer: ssa.softwareId,
      audience: deps.issuer,
      requiredClaims: ['iat', 'exp', 'jti'],
      maxTokenAge: MAX_REQUEST_LIFETIME_SECONDS,
      clockTolerance: 10,
    }));
  } catch (err) {
    throw new OAuthError('invalid_request', describe(err, ssa, deps.issuer), { cause: err });
  }
  const jti = claims.jti;
  if (typeof jti !== 'string' || jti === '' || jti.length > 256)
    throw new OAuthError('invalid_request', 'the registration request needs a jti of at most 256 characters');
  // Remembered until the request could no longer verify anyway (exp plus the clock tolerance), in
  // whole seconds: an RFC 7519 NumericDate may carry a fraction.
  const exp = claims.exp as number;
  const firstUse = await deps.replay.recordOnce(REPLAY_MODEL, `${ssa.softwareId}:${jti}`, { jti }, Math.max(1, Math.ceil(exp - Date.now() / 1000)) + 10);
  if (!firstUse) {
    throw new OAuthError('invalid_request', `the registration request with jti ${jti} was already used; sign each request with a new jti`);
  }
  const body = Object.fromEntries(Object.entries(claims).filter(([name]) => !JWT_CLAIMS.includes(name)));
  return { body, ssa };
}

function describe(err: unknown, ssa: SoftwareStatement, issuer: string): string {
  if (err instanceof joseErrors.JWTExpired) return 'the registration request has expired (exp)';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return `the registration request's iss must be the software statement's software_id "${ssa.softwareId}"`;
    if (err.claim === 'aud') return `the registration request's aud must be this server's issuer "${issuer}"`;
    if (err.claim === 'iat') return `the registration request is too old or dated in the future (iat; at most ${MAX_REQUEST_LIFETIME_SECONDS} s)`;
    return `the registration request lacks or has a bad ${err.claim} (${err.reason})`;
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "the registration request is signed with a key the software statement's JWKS does not hold";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return "the registration request's signature does not verify with the software statement's keys";
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the registration request must be signed with PS256, ES256 or EdDSA';
  return `the registration request could not be verified: ${(err as Error).message}`;
}

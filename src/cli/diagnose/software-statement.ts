import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, compactVerify, createLocalJWKSet, decodeJwt, decodeProtectedHeader, importJWK, type JSONWebKeySet, type JWK } from 'jose';
import { SIGNING_ALGORITHMS } from '../../config/schema.ts';
import { fail, pass, skip, type CheckOutcome } from './checks.ts';

/*
 * The software statement (SSA) checked on this machine, as the server will at registration
 * (registration/software-statement.ts): a JWT signed with PS256, ES256 or EdDSA by a directory,
 * current, naming the software, its organisation, its roles and its redirect URIs. A registration
 * cannot be dry-run, so the signature is checked only when the directory's public keys are at hand
 * (`directory.public.jwks.json`, which `moat sandbox tpp` writes); otherwise the report says so.
 */

/** RFC 7519 §4.1.4: Moat allows this much clock skew (provider clockTolerance). */
const CLOCK_SKEW_S = 10;
/** Moat's default scopes and the roles that may ask for them (config/schema.ts); a bank may configure others. */
const DEFAULT_SCOPE_ROLES: Readonly<Record<string, readonly string[]>> = { accounts: ['AISP'], payments: ['PISP'], fundsconfirmations: ['CBPII'] };
/** Open Finance Brasil role names in Moat's terms (registration/directories.ts). */
const ROLE_ALIASES: Readonly<Record<string, string>> = { DADOS: 'AISP', PAGTO: 'PISP' };

/** What the SSA says, for the signing-key check. */
export interface SoftwareStatementClaims {
  softwareJwks?: JSONWebKeySet;
  softwareJwksUri?: string;
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

export async function checkSoftwareStatement(options: {
  ssaFile: string;
  directoryJwksFile?: string;
  redirectUri?: string;
  scope?: string;
  now?: Date;
}): Promise<{ outcome: CheckOutcome; claims?: SoftwareStatementClaims }> {
  const file = options.ssaFile;
  let jwt: string;
  try {
    jwt = readFileSync(file, 'utf8').trim();
  } catch (err) {
    return {
      outcome: fail(
        'the software statement cannot be read',
        `cannot read ${file}: ${(err as Error).message}`,
        'pass the SSA your directory issued (a JWT) with --ssa FILE',
      ),
    };
  }
  let claims: Record<string, unknown>;
  let alg: unknown;
  try {
    claims = decodeJwt(jwt);
    alg = decodeProtectedHeader(jwt).alg;
  } catch {
    return {
      outcome: fail(
        'the software statement is not a JWT',
        `${file} does not hold a JWT (header.payload.signature)`,
        'pass the SSA exactly as your directory issued it',
      ),
    };
  }
  if (!(SIGNING_ALGORITHMS as readonly unknown[]).includes(alg)) {
    return {
      outcome: fail(
        "the software statement's algorithm is not allowed",
        `it is signed with ${String(alg)}; FAPI 2.0 SP §5.4.1 allows ${SIGNING_ALGORITHMS.join(', ')}`,
        'ask your directory for an SSA signed with one of those',
      ),
    };
  }

  let signature = "not checked: the directory's public keys are not in the credentials (the server checks it at registration)";
  if (options.directoryJwksFile !== undefined) {
    try {
      const jwks = JSON.parse(readFileSync(options.directoryJwksFile, 'utf8')) as JSONWebKeySet;
      await compactVerify(jwt, createLocalJWKSet(jwks), { algorithms: [...SIGNING_ALGORITHMS] });
      signature = `verified with the directory keys in ${options.directoryJwksFile}`;
    } catch (err) {
      return {
        outcome: fail(
          "the software statement's signature does not verify",
          `not with the directory keys in ${options.directoryJwksFile}: ${(err as Error).message}`,
          'use the SSA exactly as the directory issued it (any change breaks the signature), from the directory whose keys these are',
        ),
      };
    }
  }

  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (typeof claims.iss !== 'string' || claims.iss === '') {
    return {
      outcome: fail(
        'the software statement names no issuer',
        'it has no iss claim: the server finds the directory (and its keys) by iss',
        'ask your directory for a proper SSA',
      ),
    };
  }
  if (typeof claims.exp === 'number' && claims.exp + CLOCK_SKEW_S < now) {
    return {
      outcome: fail(
        'the software statement has expired',
        `its exp is ${iso(claims.exp)}; it is ${iso(now)} now`,
        'fetch a new software statement from your directory (in the sandbox: moat sandbox tpp issues one with its credentials)',
        { exp: iso(claims.exp) },
      ),
    };
  }
  if (typeof claims.iat === 'number' && claims.iat - CLOCK_SKEW_S > now) {
    return {
      outcome: fail(
        'the software statement is dated in the future',
        `its iat is ${iso(claims.iat)}; this machine's clock says ${iso(now)}`,
        "check this machine's clock; an SSA issued in the future is refused",
      ),
    };
  }
  for (const name of ['software_id', 'org_id']) {
    if (typeof claims[name] !== 'string' || claims[name] === '') {
      return {
        outcome: fail(
          `the software statement lacks ${name}`,
          `${name} is missing or empty; the server refuses the registration`,
          'ask your directory for a complete SSA',
        ),
      };
    }
  }
  if (claims.org_status !== undefined && claims.org_status !== 'Active') {
    return {
      outcome: fail(
        'the organisation is not active in the directory',
        `org_status is "${String(claims.org_status)}", not Active`,
        'the organisation must be active in the directory before it can register',
      ),
    };
  }
  const roles = claims.software_roles;
  if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => typeof r === 'string')) {
    return {
      outcome: fail(
        'the software statement names no roles',
        'software_roles must be a non-empty array of strings (AISP, PISP, CBPII)',
        'ask your directory for an SSA with the roles your software has',
      ),
    };
  }
  const moatRoles = (roles as string[]).map((r) => ROLE_ALIASES[r] ?? r);
  for (const scope of (options.scope ?? '').split(' ').filter(Boolean)) {
    const needed = DEFAULT_SCOPE_ROLES[scope];
    if (needed !== undefined && !needed.some((r) => moatRoles.includes(r))) {
      return {
        outcome: fail(
          `the software statement's roles do not allow scope ${scope}`,
          `scope ${scope} needs the role ${needed.join(' or ')} (Moat's default scopes); the SSA grants ${(roles as string[]).join(', ')}`,
          `ask only for scopes your roles allow, or get the ${needed.join('/')} role from your regulator and directory`,
        ),
      };
    }
  }
  const redirectUris = claims.software_redirect_uris;
  if (!Array.isArray(redirectUris) || redirectUris.length === 0 || !redirectUris.every((u) => typeof u === 'string')) {
    return {
      outcome: fail(
        'the software statement has no redirect URIs',
        'software_redirect_uris must be a non-empty array of URLs',
        'ask your directory to list your redirect URIs in the SSA',
      ),
    };
  }
  if (options.redirectUri !== undefined && !redirectUris.includes(options.redirectUri)) {
    return {
      outcome: fail(
        'the redirect URI is not in the software statement',
        `${options.redirectUri} is not among the SSA's software_redirect_uris (${(redirectUris as string[]).join(', ')}); the server registers only redirect URIs the SSA lists`,
        `use one of the SSA's redirect URIs, or have the directory add ${options.redirectUri} to your software and fetch a new SSA`,
        { softwareRedirectUris: redirectUris },
      ),
    };
  }
  const softwareJwks = claims.software_jwks as JSONWebKeySet | undefined;
  const softwareJwksUri = claims.software_jwks_uri ?? claims.software_jwks_endpoint;
  return {
    outcome: pass(
      `issued by ${claims.iss} for software ${String(claims.software_id)} of ${String(claims.org_id)}, roles ${(roles as string[]).join(', ')}${typeof claims.exp === 'number' ? `, valid until ${iso(claims.exp)}` : ''}; signature ${signature}`,
      {
        iss: claims.iss,
        softwareId: claims.software_id,
        orgId: claims.org_id,
        roles,
        softwareRedirectUris: redirectUris,
        signature: signature.startsWith('verified') ? 'verified' : 'not-checked',
      },
    ),
    claims: {
      ...(softwareJwks !== undefined && Array.isArray(softwareJwks.keys) ? { softwareJwks } : {}),
      ...(typeof softwareJwksUri === 'string' ? { softwareJwksUri } : {}),
    },
  };
}

/** The signing key (JWKS or JWK, private) usable, and one of the SSA's software_jwks. */
export async function checkSigningKey(file: string | undefined, ssa: SoftwareStatementClaims | undefined): Promise<CheckOutcome> {
  if (file === undefined) return skip('no --signing-key');
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(
      'the signing key cannot be read',
      `${file}: ${(err as Error).message}`,
      'pass the private signing key as a JWKS or JWK (JSON) with --signing-key',
    );
  }
  const keys = (Array.isArray((parsed as { keys?: unknown }).keys) ? (parsed as { keys: JWK[] }).keys : [parsed as JWK]).filter(
    (k) => typeof k === 'object' && k !== null,
  );
  const privateKeys = keys.filter((k) => typeof k.d === 'string');
  if (privateKeys.length === 0) {
    return fail(
      'the signing key file holds no private key',
      `${file} has no JWK with a private part ("d")`,
      "pass your private signing key (the public one goes into the SSA's software_jwks)",
    );
  }
  const key = privateKeys[0]!;
  if (key.alg !== undefined && !(SIGNING_ALGORITHMS as readonly string[]).includes(key.alg)) {
    return fail(
      "the signing key's algorithm is not allowed",
      `its alg is ${key.alg}; FAPI 2.0 SP §5.4.1 allows ${SIGNING_ALGORITHMS.join(', ')}`,
      'use a PS256 (RSA ≥ 2048), ES256 (P-256) or EdDSA key',
    );
  }
  try {
    await importJWK(key, key.alg ?? (key.kty === 'EC' ? 'ES256' : key.kty === 'OKP' ? 'EdDSA' : 'PS256'));
  } catch (err) {
    return fail('the signing key is not usable', `${file}: ${(err as Error).message}`, 'pass a valid private JWK');
  }
  const thumbprint = await calculateJwkThumbprint(key);
  if (ssa?.softwareJwks === undefined) {
    return pass(
      `${file}: ${key.kty} key ${key.kid ?? thumbprint}${ssa?.softwareJwksUri === undefined ? '' : ` (the SSA publishes its keys at ${ssa.softwareJwksUri}, not checked)`}`,
      { kid: key.kid, thumbprint },
    );
  }
  const published = await Promise.all(ssa.softwareJwks.keys.map((k) => calculateJwkThumbprint(k as JWK).catch(() => '')));
  if (!published.includes(thumbprint)) {
    return fail(
      'the signing key is not in the software statement',
      `the key ${key.kid ?? thumbprint} is not among the SSA's software_jwks (${ssa.softwareJwks.keys.map((k) => (k as JWK).kid ?? '?').join(', ')}); signed registration requests and private_key_jwt with it are refused`,
      'sign with a key the SSA lists, or have the directory publish this key for your software',
      { kid: key.kid, thumbprint },
    );
  }
  return pass(`${file}: ${key.kty} key ${key.kid ?? thumbprint}, one of the SSA's software_jwks`, { kid: key.kid, thumbprint });
}

import { calculateJwkThumbprint, type JWK } from 'jose';
import { cibaEnabled } from '../config/ciba-enabled.ts';
import { AUTHORIZATION_DETAILS_TYPES, ROLE_FOR_TYPE } from '../consents/authorization-details.ts';
import type { MoatConfig } from '../config/schema.ts';
import { OAuthError } from '../kernel/oauth-error.ts';
import { CLIENT_AUTH_METHODS } from '../kernel/client-authentication.ts';
import { CIBA_GRANT_TYPE } from '../kernel/grant-types.ts';
import { GRANT_MANAGEMENT_SCOPES } from '../consents/grant-management.ts';
import type { PresentedCertificate } from '../tls/client-certificate.ts';
import { describeDifference, distinguishedNamesEqual, formatDistinguishedName, getAttribute, parseDistinguishedName } from '../pki/distinguished-name.ts';
import type { SoftwareStatement } from './software-statement.ts';

/*
 * What a TPP may register, given the software statement its directory signed and the transport
 * certificate it presented. Pure: the request and the evidence in, client metadata (or an RFC 7591
 * error precise enough to fix the request) out.
 */

const ALLOWED_GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials']);
/** Decoupled authorisation (CIBA Core §4), when the bank has it on. */
const CIBA_GRANT_TYPES = new Set([CIBA_GRANT_TYPE]);
/** Scopes every client may have whatever its roles (its own grants: FAPI Grant Management). */
const BASE_SCOPES = ['openid', 'offline_access', ...GRANT_MANAGEMENT_SCOPES];

export async function registrationMetadata(
  request: Record<string, unknown>,
  ssa: SoftwareStatement,
  presented: PresentedCertificate | undefined,
  config: MoatConfig,
): Promise<Record<string, unknown>> {
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
      throw new OAuthError(
        'invalid_client_metadata',
        `tls_client_auth_subject_dn does not match the presented certificate's subject ${formatDistinguishedName(presented!.subject)}${diff === undefined ? '' : ` (${diff})`}`,
      );
    }
  }

  const allowedScopes = scopesForRoles(ssa.roles, config);
  const scopeParam = optionalString(request, 'scope');
  const scopes = scopeParam === undefined ? allowedScopes : scopeParam.split(' ').filter(Boolean);
  for (const scope of scopes) {
    if (!allowedScopes.includes(scope)) {
      const needed = config.scopes[scope]?.roles;
      throw new OAuthError(
        'invalid_client_metadata',
        needed === undefined
          ? `scope ${scope} is not offered by this server`
          : `scope ${scope} requires one of the roles ${needed.join(', ')}; the software statement grants ${ssa.roles.join(', ')}`,
      );
    }
  }
  metadata.scope = scopes.join(' ');

  // RFC 9396 §10: which authorization_details types the client may use follows from its roles.
  const allowedTypes = AUTHORIZATION_DETAILS_TYPES.filter((type) => ssa.roles.includes(ROLE_FOR_TYPE[type]));
  const detailTypes = stringArray(request, 'authorization_details_types') ?? allowedTypes;
  for (const type of detailTypes) {
    if (!(allowedTypes as string[]).includes(type)) {
      throw new OAuthError(
        'invalid_client_metadata',
        (AUTHORIZATION_DETAILS_TYPES as readonly string[]).includes(type)
          ? `authorization_details_types ${type} requires the ${ROLE_FOR_TYPE[type as keyof typeof ROLE_FOR_TYPE]} role; the software statement grants ${ssa.roles.join(', ')}`
          : `authorization_details_types ${type} is not supported (supported: ${AUTHORIZATION_DETAILS_TYPES.join(', ')})`,
      );
    }
  }
  metadata.authorization_details_types = detailTypes;

  const grantTypes = stringArray(request, 'grant_types') ?? ['authorization_code', 'refresh_token', 'client_credentials'];
  const allowedGrants = cibaEnabled(config) ? new Set([...ALLOWED_GRANT_TYPES, ...CIBA_GRANT_TYPES]) : ALLOWED_GRANT_TYPES;
  const badGrant = grantTypes.find((g) => !allowedGrants.has(g));
  if (badGrant !== undefined)
    throw new OAuthError('invalid_client_metadata', `grant_type ${badGrant} is not allowed (allowed: ${[...allowedGrants].join(', ')})`);
  metadata.grant_types = grantTypes;
  metadata.response_types = stringArray(request, 'response_types') ?? ['code'];

  // RFC 8705 §3 by default; RFC 9449 DPoP when the client registers for it. Never neither.
  const dpop = request.dpop_bound_access_tokens === true;
  metadata.dpop_bound_access_tokens = dpop;
  metadata.tls_client_certificate_bound_access_tokens = !dpop;

  for (const from of FROM_STATEMENT) await applyStatementValue(metadata, request, ssa, from);
  // The client's keys are the ones its directory vouches for.
  if (metadata.jwks === undefined && metadata.jwks_uri === undefined && method === 'private_key_jwt') {
    throw new OAuthError(
      'invalid_software_statement',
      'private_key_jwt needs the TPP keys in the software statement (software_jwks or software_jwks_endpoint)',
    );
  }
  // What the customer is shown as the application's name is the directory's, else its software id.
  metadata.client_name ??= ssa.softwareId;
  return metadata;
}

/**
 * Client metadata the software statement supplies. RFC 7591 §2.3: the statement's values "MUST take
 * precedence over those conveyed using plain JSON elements". Precedence is not prohibition: a
 * request may repeat them (client libraries and conformance suites send the statement's jwks or
 * jwks_uri; an RFC 7592 update sends back the registration it was given), but it may not contradict
 * them: a different value is refused naming the field and the statement's value (UK OBIE DCR 3.2:
 * "If specified, the software_id in the request MUST match the software_id specified in the SSA").
 */
interface FromStatement {
  /** The client metadata field. */
  field: string;
  /** The statement claim it comes from, as errors name it. */
  claim: (ssa: SoftwareStatement) => string;
  /** What is registered from the statement; undefined when the statement is silent. */
  value: (ssa: SoftwareStatement) => unknown;
  /**
   * The statement's own spelling of the same value, also accepted in a request (the directory's role
   * names; the software_jwks_endpoint of a statement that also gives its keys by value).
   */
  raw?: (ssa: SoftwareStatement) => unknown;
  /** Whether a sent value is the statement's; JSON equality (`sameValue`) unless said otherwise. */
  same?: (sent: unknown, vouched: unknown) => Promise<boolean>;
  /**
   * Where the statement is silent: `request` keeps the request's value; `never` drops it (what the
   * customer is shown about who asks comes from the directory or not at all, RFC 7591 §3.2.1 lets a
   * server replace requested values); `refused` refuses it (keys come only from the directory).
   */
  whenSilent: 'request' | 'never' | 'refused';
  /** Compared as sets (order carries no meaning). */
  unordered?: boolean;
}

const claimOf = (name: string) => () => name;
const stringClaim = (name: string) => (ssa: SoftwareStatement) => (typeof ssa.claims[name] === 'string' ? ssa.claims[name] : undefined);

const JWKS_URI: FromStatement = {
  field: 'jwks_uri',
  claim: (ssa) => (typeof ssa.claims.software_jwks_uri === 'string' ? 'software_jwks_uri' : 'software_jwks_endpoint'),
  // A statement with both gives its keys once: by value. A request may still repeat its endpoint.
  value: (ssa) => (ssa.jwks === undefined ? ssa.jwksUri : undefined),
  raw: (ssa) => ssa.jwksUri,
  whenSilent: 'refused',
};

const FROM_STATEMENT: readonly FromStatement[] = [
  { field: 'software_id', claim: claimOf('software_id'), value: (ssa) => ssa.softwareId, whenSilent: 'never' },
  { field: 'org_id', claim: claimOf('org_id'), value: (ssa) => ssa.orgId, whenSilent: 'never' },
  { field: 'org_name', claim: claimOf('org_name'), value: (ssa) => ssa.orgName, whenSilent: 'never' },
  {
    field: 'software_roles',
    claim: claimOf('software_roles'),
    value: (ssa) => ssa.roles,
    raw: (ssa) => ssa.claims.software_roles,
    whenSilent: 'never',
    unordered: true,
  },
  { field: 'client_name', claim: claimOf('software_client_name'), value: (ssa) => ssa.clientName, whenSilent: 'never' },
  { field: 'logo_uri', claim: claimOf('software_logo_uri'), value: stringClaim('software_logo_uri'), whenSilent: 'never' },
  { field: 'client_uri', claim: claimOf('software_client_uri'), value: stringClaim('software_client_uri'), whenSilent: 'never' },
  { field: 'policy_uri', claim: claimOf('software_policy_uri'), value: stringClaim('software_policy_uri'), whenSilent: 'request' },
  { field: 'tos_uri', claim: claimOf('software_tos_uri'), value: stringClaim('software_tos_uri'), whenSilent: 'request' },
  { field: 'software_version', claim: claimOf('software_version'), value: stringClaim('software_version'), whenSilent: 'request' },
  { field: 'jwks', claim: claimOf('software_jwks'), value: (ssa) => ssa.jwks, whenSilent: 'refused', same: sameKeys },
  JWKS_URI,
];

async function applyStatementValue(
  metadata: Record<string, unknown>,
  request: Record<string, unknown>,
  ssa: SoftwareStatement,
  from: FromStatement,
): Promise<void> {
  const { field } = from;
  const sent = request[field];
  const vouched = from.value(ssa);
  const isStatements = async (value: unknown) => (from.same ?? sameValue)(sent, value, from.unordered);
  const differs = (value: unknown) =>
    new OAuthError(
      'invalid_client_metadata',
      `${field} ${shown(sent)} differs from the software statement's ${from.claim(ssa)} ${shown(value)}; send the statement's value or leave ${field} out (RFC 7591 §2.3)`,
    );
  if (vouched === undefined) {
    const raw = from.raw?.(ssa);
    if (sent !== undefined && from.whenSilent === 'refused' && !(raw !== undefined && (await isStatements(raw)))) {
      if (raw !== undefined) throw differs(raw);
      throw new OAuthError(
        'invalid_client_metadata',
        ssa.jwks === undefined && ssa.jwksUri === undefined
          ? `${field}: the TPP's keys come only from the software statement (software_jwks or software_jwks_endpoint), and this one names none`
          : `${field} conflicts with the software statement, which gives the TPP's keys ${ssa.jwks !== undefined ? 'by value (software_jwks)' : `at ${JWKS_URI.claim(ssa)} ${shown(ssa.jwksUri)}`}; leave ${field} out (RFC 7591 §2.3)`,
      );
    }
    if (from.whenSilent !== 'request') delete metadata[field];
    return;
  }
  if (sent !== undefined && !(await isStatements(vouched)) && !(from.raw !== undefined && (await isStatements(from.raw(ssa))))) throw differs(vouched);
  metadata[field] = vouched;
}

/** JSON equality: object members in any order; arrays in order unless `unordered`. */
async function sameValue(a: unknown, b: unknown, unordered = false): Promise<boolean> {
  return canonical(a, unordered) === canonical(b, unordered);
}

/**
 * Two JWKS hold the same keys when their keys' RFC 7638 thumbprints are the same set: a key's other
 * members (kid, alg, use, x5c) may be written differently, or left out, and it is still the key the
 * directory vouches for (what is registered is the statement's JWKS, as it wrote it). Anything that
 * is not a set of keys is not the same.
 */
async function sameKeys(a: unknown, b: unknown): Promise<boolean> {
  const thumbprints = async (jwks: unknown): Promise<Set<string> | undefined> => {
    const keys = (jwks as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys)) return undefined;
    try {
      return new Set(await Promise.all(keys.map((key) => calculateJwkThumbprint(key as JWK))));
    } catch {
      return undefined;
    }
  };
  const [x, y] = await Promise.all([thumbprints(a), thumbprints(b)]);
  return x !== undefined && y !== undefined && x.size === y.size && [...x].every((t) => y.has(t));
}

function canonical(value: unknown, unordered = false): string {
  if (Array.isArray(value)) {
    const members = value.map((v) => canonical(v));
    return `[${(unordered ? members.sort() : members).join(',')}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A value as an error shows it: a JWKS by its key ids, anything else as JSON, never at length. */
function shown(value: unknown): string {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (Array.isArray(keys)) return `(keys ${keys.map((k) => String((k as { kid?: unknown }).kid ?? '?')).join(', ') || 'none'})`;
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 200 ? `${json.slice(0, 200)}…` : json;
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
    throw new OAuthError(
      'unapproved_software_statement',
      `the transport certificate belongs to organisation ${certOrg === undefined ? '(none)' : `"${certOrg}"`} (${ssa.directory.orgIdAttribute}) but the software statement's org_id is "${ssa.orgId}"${expected === ssa.orgId ? '' : ` (expected "${expected}" in the certificate)`}`,
    );
  }
}

export function scopesForRoles(roles: readonly string[], config: MoatConfig): string[] {
  return [
    ...BASE_SCOPES,
    ...Object.entries(config.scopes)
      .filter(([, s]) => s.roles.some((r) => roles.includes(r)))
      .map(([name]) => name),
  ];
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

import {
  describeDifference,
  distinguishedNamesEqual,
  formatDistinguishedName,
  InvalidDistinguishedNameError,
  parseDistinguishedName,
  subjectOf,
  type DistinguishedName,
} from '../../pki/distinguished-name.ts';
import { fail, pass, skip, type CheckOutcome } from './checks.ts';
import type { LocalCredentials } from './local-certificate.ts';
import type { LocalRegistration } from './inputs.ts';
import { httpsRequest, type ServerEndpoints, type TlsMaterial } from './server-connection.ts';

/*
 * What the server makes of the certificate, learnt the only way a TPP can: by presenting it. One
 * client_credentials request at the token endpoint over mutual TLS (RFC 8705 §2) is the dry run.
 * Moat says why it refuses a certificate in the invalid_client error_description
 * (observability/mtls-outcome.ts): "client authentication failed: " and then
 *   - "the client certificate is not trusted: <why>"         chain, dates, extended key usage
 *   - "the client certificate has been revoked" / "…retired…" / "the revocation status … cannot be established"
 *   - "the client certificate's subject is not the tls_client_auth_subject_dn registered for this
 *     client; the server saw the subject <DN>"
 *   - "no client certificate was presented …"
 * A bare "client authentication failed" carries no certificate cause: the client is unknown, uses
 * another method, or the server says no more (another server, an older Moat).
 */

/** The client_id sent when none is given: no client has it, so only certificate causes can be told. */
export const PROBE_CLIENT_ID = 'moat-diagnose-probe';

const NOT_TRUSTED = /the client certificate is not trusted: (.+)$/;
const REVOKED = /the client certificate has been revoked/;
const RETIRED = /the client certificate has been retired/;
const REVOCATION_UNKNOWN = /revocation status of the client certificate cannot be established/;
const SUBJECT_MISMATCH = /subject is not the tls_client_auth_subject_dn registered for this client(?:; the server saw the subject (.+))?$/;
const NO_CERTIFICATE = /no client certificate was presented/;

/** The token endpoint's verdict on the certificate and the client, as one value. */
export type TokenVerdict =
  | { kind: 'issued'; accessToken: string; tokenType: string; scope?: string }
  | { kind: 'not-trusted'; reason: string; description: string }
  | { kind: 'no-certificate'; description: string }
  | { kind: 'revoked' | 'retired' | 'revocation-unknown'; description: string }
  | { kind: 'subject-mismatch'; serverSaw?: string; description: string }
  /** invalid_client with no certificate cause. */
  | { kind: 'client-refused'; description: string }
  /** Authenticated, then refused for another reason (unauthorized_client, invalid_scope, …). */
  | { kind: 'authenticated'; error: string; description: string }
  | { kind: 'unexpected'; status: number; body: string };

/** Scopes for a client_credentials request: the non-OpenID ones of `scope`. */
function clientCredentialsScope(scope: string | undefined): string | undefined {
  const scopes = (scope ?? '').split(' ').filter((s) => s !== '' && s !== 'openid' && s !== 'offline_access');
  return scopes.length === 0 ? undefined : scopes.join(' ');
}

/** The dry run: client_credentials over mTLS as `clientId` (or the probe id). */
export async function tokenDryRun(
  endpoints: ServerEndpoints,
  tls: TlsMaterial,
  clientId: string | undefined,
  scope: string | undefined,
): Promise<TokenVerdict> {
  const ccScope = clientCredentialsScope(scope);
  const answer = await httpsRequest(endpoints.token, tls, {
    form: { grant_type: 'client_credentials', client_id: clientId ?? PROBE_CLIENT_ID, ...(ccScope === undefined ? {} : { scope: ccScope }) },
  });
  const body = (answer.json ?? {}) as Record<string, unknown>;
  if (answer.status === 200 && typeof body.access_token === 'string') {
    return {
      kind: 'issued',
      accessToken: body.access_token,
      tokenType: String(body.token_type ?? ''),
      ...(typeof body.scope === 'string' ? { scope: body.scope } : {}),
    };
  }
  const error = typeof body.error === 'string' ? body.error : undefined;
  const description = typeof body.error_description === 'string' ? body.error_description : '';
  if (error === undefined) return { kind: 'unexpected', status: answer.status, body: answer.text.slice(0, 300) };
  if (error !== 'invalid_client') return { kind: 'authenticated', error, description };
  // The cause, without oidc-provider's words in front of it.
  const said = description.replace(/^client authentication failed: /, '');
  const notTrusted = NOT_TRUSTED.exec(said);
  if (notTrusted !== null) return { kind: 'not-trusted', reason: notTrusted[1]!, description: said };
  if (REVOKED.test(said)) return { kind: 'revoked', description: said };
  if (RETIRED.test(said)) return { kind: 'retired', description: said };
  if (REVOCATION_UNKNOWN.test(said)) return { kind: 'revocation-unknown', description: said };
  const mismatch = SUBJECT_MISMATCH.exec(said);
  if (mismatch !== null) return { kind: 'subject-mismatch', description: said, ...(mismatch[1] === undefined ? {} : { serverSaw: mismatch[1] }) };
  if (NO_CERTIFICATE.test(said)) return { kind: 'no-certificate', description: said };
  return { kind: 'client-refused', description };
}

/** RFC 4514 text of a DN, or the text itself when it does not parse (said as such). */
function normalised(dn: string): string {
  try {
    return formatDistinguishedName(parseDistinguishedName(dn));
  } catch (err) {
    if (err instanceof InvalidDistinguishedNameError) return `${dn} (not an RFC 4514 DN: ${err.message})`;
    throw err;
  }
}

/** Check 4: the chain ends at a trust anchor the server accepts. */
export function trustAnchorOutcome(verdict: TokenVerdict, local: LocalCredentials, acceptable: DistinguishedName[] | undefined): CheckOutcome {
  const anchors = acceptable?.map((n) => formatDistinguishedName(n));
  const details = { certificateIssuer: local.issuerDn, ...(anchors === undefined ? {} : { acceptableCas: anchors }) };
  if (verdict.kind === 'not-trusted') {
    const noPath = verdict.reason.startsWith('no path from the certificate');
    const listed =
      anchors === undefined
        ? 'The server did not list the CAs it accepts (its TLS 1.2 CertificateRequest could not be read).'
        : anchors.length === 0
          ? 'The server lists no CA in its TLS CertificateRequest.'
          : `The server accepts client certificates issued under: ${anchors.join('; ')} (its TLS CertificateRequest).`;
    return fail(
      noPath ? "the server does not accept the certificate's chain" : 'the server does not trust the certificate',
      `the server says: ${verdict.reason}. ${listed} Your certificate's issuer: ${local.issuerDn}.`,
      noPath
        ? `use a transport certificate issued under a CA the server accepts${anchors !== undefined && anchors.length > 0 ? ` (${anchors.join('; ')})` : ''} — your directory's issuing CA; in the sandbox, moat sandbox tpp issues one — or ask the bank to add ${local.issuerDn} as a trust anchor. If an intermediate CA issued your certificate, put it after the certificate in the --cert file`
        : 'fix what the server names (an intermediate or the anchor itself may be out of its dates), then run moat diagnose again',
      details,
    );
  }
  if (verdict.kind === 'no-certificate') {
    return fail(
      'the server did not receive the certificate',
      `diagnose presented ${local.subjectDn}, but the server says: ${verdict.description}`,
      "a gateway in front of the server terminates TLS without asking for, or forwarding, the client certificate: the bank's gateway must request it and forward it to Moat (trustedProxies)",
      details,
    );
  }
  if (verdict.kind === 'unexpected') {
    return fail(
      'the token endpoint answered something diagnose cannot read',
      `HTTP ${verdict.status}: ${verdict.body}`,
      "check that the discovery document's token_endpoint is the server's (and any gateway's) mTLS endpoint",
      details,
    );
  }
  return pass(`the server accepted the chain of ${local.subjectDn} (issued by ${local.issuerDn})`, details);
}

/** Check 5: the server's registry does not hold the certificate revoked or retired. */
export function revocationOutcome(verdict: TokenVerdict, local: LocalCredentials, clientId: string | undefined): CheckOutcome {
  const details = { thumbprint: local.thumbprint };
  if (verdict.kind === 'revoked') {
    return fail(
      'the certificate is revoked',
      `the server says: ${verdict.description} (x5t#S256 ${local.thumbprint})`,
      'revoked: get a new certificate from your directory, then register it (an RFC 7592 update presented with the new certificate, or a new registration)',
      details,
    );
  }
  if (verdict.kind === 'retired') {
    return fail(
      'the certificate is retired',
      `the server says: ${verdict.description}`,
      'use the newer certificate registered for this client (a rotation retired this one)',
      details,
    );
  }
  if (verdict.kind === 'revocation-unknown') {
    return fail(
      "the certificate's revocation status is unknown to the server",
      `the server says: ${verdict.description}; it fails closed`,
      'the OCSP responder or CRL named in the certificate (authorityInfoAccess, cRLDistributionPoints) must answer the server; ask your CA, or the bank if it cannot reach them',
      details,
    );
  }
  return pass(
    clientId === undefined
      ? 'the server holds no revocation of this certificate (its registry knows the certificates clients registered with)'
      : 'the server did not refuse the certificate as revoked, retired or of unknown revocation status',
    details,
  );
}

/** Where the registered subject DN came from, for the comparison. */
export interface RegisteredSubject {
  dn: string;
  source: string;
}

/** RFC 7592 §2.1 read of the client's registration with its registration access token. */
export async function readRegisteredSubject(
  endpoints: ServerEndpoints,
  tls: TlsMaterial,
  clientId: string,
  token: string,
): Promise<RegisteredSubject | { problem: string }> {
  if (endpoints.registration === undefined) return { problem: 'the discovery document has no registration_endpoint' };
  const answer = await httpsRequest(`${endpoints.registration.replace(/\/$/, '')}/${encodeURIComponent(clientId)}`, tls, {
    headers: { authorization: `Bearer ${token}` },
  });
  const body = answer.json as Record<string, unknown> | undefined;
  if (answer.status !== 200 || body === undefined)
    return {
      problem: `the registration read answered HTTP ${answer.status}${typeof body?.error === 'string' ? ` ${body.error}` : ''} (is --registration-token this client's current registration access token? it rotates on every update)`,
    };
  if (typeof body.tls_client_auth_subject_dn !== 'string')
    return { problem: `client ${clientId} has no tls_client_auth_subject_dn (token_endpoint_auth_method ${String(body.token_endpoint_auth_method)})` };
  return { dn: body.tls_client_auth_subject_dn, source: 'registered at the server (RFC 7592 read with --registration-token)' };
}

/** The attribute types in which two DNs first differ (`CN`, `OU`, …). */
function differingAttributes(expected: DistinguishedName, actual: DistinguishedName): string[] {
  const typeOf = (a: DistinguishedName[number][number]) => formatDistinguishedName([[a]]).split('=')[0]!;
  for (let i = 0; i < Math.max(expected.length, actual.length); i += 1) {
    const e = expected[i] ?? [];
    const a = actual[i] ?? [];
    if (distinguishedNamesEqual([e], [a])) continue;
    const missing = e.filter((x) => !a.some((y) => distinguishedNamesEqual([[x]], [[y]])));
    const extra = a.filter((y) => !e.some((x) => distinguishedNamesEqual([[x]], [[y]])));
    return [...new Set([...missing, ...extra].map(typeOf))];
  }
  return [];
}

/** Check 6: client authentication, and on a subject mismatch both DNs and what differs. */
export function clientAuthenticationOutcome(
  verdict: TokenVerdict,
  local: LocalCredentials,
  clientId: string | undefined,
  registered: RegisteredSubject | { problem: string } | undefined,
  localRegistration: LocalRegistration | undefined,
): CheckOutcome {
  if (clientId === undefined) return skip('no --client-id: pass the client_id of your registration to dry-run client authentication');
  if (verdict.kind === 'issued') return pass(`client ${clientId} authenticated with its certificate (tls_client_auth); a client_credentials token was issued`);
  if (verdict.kind === 'authenticated') {
    return pass(
      `client ${clientId} authenticated with its certificate; the token endpoint then answered ${verdict.error}${verdict.description === '' ? '' : `: ${verdict.description}`}`,
      { tokenError: verdict.error },
    );
  }
  if (verdict.kind === 'client-refused') {
    return fail(
      `the server refused client ${clientId}`,
      `invalid_client without a certificate cause (${verdict.description || 'no description'}): the server has no client ${clientId}, or it does not authenticate with tls_client_auth`,
      'check --client-id: it is the client_id of your registration response (register first, see the README quick start); a client registered with private_key_jwt is not diagnosed here',
    );
  }
  if (verdict.kind !== 'subject-mismatch') return pass('no certificate cause stopped client authentication');

  const certificateDn = formatDistinguishedName(subjectOf(local.certificate));
  const serverSaw = verdict.serverSaw === undefined ? undefined : normalised(verdict.serverSaw);
  const known =
    registered !== undefined && 'dn' in registered
      ? registered
      : localRegistration?.subjectDn === undefined
        ? undefined
        : { dn: localRegistration.subjectDn, source: `in ${localRegistration.file} (what you registered with, unless the registration changed since)` };
  const details: Record<string, unknown> = { certificateSubjectDn: certificateDn, ...(serverSaw === undefined ? {} : { serverSawSubjectDn: serverSaw }) };
  const lines = [
    `the certificate's subject is not the tls_client_auth_subject_dn registered for client ${clientId} (compared as RFC 4514 DNs).`,
    `  certificate subject (the server saw): ${serverSaw ?? certificateDn}`,
  ];
  let fix = `present the certificate whose subject is the registered DN, or update the registration (RFC 7592 PUT presented with this certificate) so that tls_client_auth_subject_dn is ${certificateDn}`;
  if (known === undefined) {
    const why =
      registered !== undefined && 'problem' in registered
        ? registered.problem
        : 'pass --registration-token (RFC 7592) or --credentials with the registration.json you registered with';
    lines.push(`  registered subject: not known here (${why})`);
  } else {
    let registeredDn: DistinguishedName | undefined;
    try {
      registeredDn = parseDistinguishedName(known.dn);
    } catch {
      registeredDn = undefined;
    }
    const registeredText = registeredDn === undefined ? normalised(known.dn) : formatDistinguishedName(registeredDn);
    lines.push(`  registered subject, ${known.source}: ${registeredText}`);
    Object.assign(details, { registeredSubjectDn: registeredText, registeredSource: known.source });
    if (registeredDn !== undefined) {
      const difference = describeDifference(registeredDn, subjectOf(local.certificate));
      if (difference === undefined) {
        lines.push('  these two are equal, so the client is registered with another DN than that file says: read it with --registration-token');
        fix = 'read the registered DN with --registration-token; then present the certificate it names, or update the registration with this certificate';
      } else {
        const attributes = differingAttributes(registeredDn, subjectOf(local.certificate));
        lines.push(`  differing attribute${attributes.length === 1 ? '' : 's'}: ${attributes.join(', ')} — ${difference}`);
        Object.assign(details, { differingAttributes: attributes, difference });
      }
    }
  }
  return fail("the certificate's subject DN is not the registered one", lines.join('\n'), fix, details);
}

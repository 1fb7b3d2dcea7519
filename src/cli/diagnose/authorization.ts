import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { fail, pass, skip, type CheckOutcome } from './checks.ts';
import type { TokenVerdict } from './client-auth.ts';
import type { LocalCredentials } from './local-certificate.ts';
import { httpsRequest, type ServerEndpoints, type TlsMaterial } from './server-connection.ts';

/*
 * The client's side of an authorization, as far as it goes without a customer: a pushed
 * authorization request (RFC 9126) with PKCE S256 (RFC 7636) over mTLS, which the server checks
 * fully (redirect URI, scope, profile) and answers with a request_uri nobody will use; and the
 * binding of the client_credentials token the dry run got, which is what the bank's APIs check
 * (RFC 8705 §3: cnf.x5t#S256 is the certificate's SHA-256 thumbprint).
 */

/** Check 8: PAR. Needs a client id, a redirect URI and a PAR endpoint. */
export async function checkPushedAuthorization(options: {
  endpoints: ServerEndpoints;
  tls: TlsMaterial;
  clientId: string | undefined;
  redirectUri: string | undefined;
  scope: string | undefined;
}): Promise<CheckOutcome> {
  const { endpoints, clientId, redirectUri } = options;
  if (clientId === undefined || redirectUri === undefined)
    return skip(`needs --client-id and --redirect-uri${clientId === undefined ? '' : ' (or --credentials with registration.json)'}`);
  if (endpoints.par === undefined) return skip('the discovery document has no pushed_authorization_request_endpoint');
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const scope = options.scope ?? 'openid';
  const answer = await httpsRequest(endpoints.par, options.tls, {
    form: { client_id: clientId, response_type: 'code', redirect_uri: redirectUri, scope, code_challenge: challenge, code_challenge_method: 'S256' },
  });
  const body = (answer.json ?? {}) as Record<string, unknown>;
  if (answer.status === 201 && typeof body.request_uri === 'string') {
    return pass(`the server accepted a PAR for ${redirectUri}, scope "${scope}" (request_uri valid ${String(body.expires_in)} s, left unused)`, {
      redirectUri,
      scope,
    });
  }
  const error = typeof body.error === 'string' ? body.error : `HTTP ${answer.status}`;
  const description = typeof body.error_description === 'string' ? body.error_description : answer.text.slice(0, 300);
  const cause = `the server answered ${error}: ${description}`;
  const details = { error, errorDescription: description, redirectUri, scope };
  if (/redirect_uri/.test(description) || error === 'invalid_redirect_uri') {
    return fail(
      'the redirect URI is not registered for this client',
      cause,
      `use a redirect URI registered for client ${clientId}, or register ${redirectUri} (an RFC 7592 update; the software statement must list it too)`,
      details,
    );
  }
  if (error === 'invalid_scope' || /scope/.test(description)) {
    return fail(
      'the scope is not allowed for this client',
      cause,
      'ask only for scopes the client registered (its scope metadata) and its software roles allow; set them with --scope',
      details,
    );
  }
  if (/Request Object/i.test(description)) {
    return skip(`the client's FAPI profile requires a signed request object at PAR, which diagnose does not make (${description})`, details);
  }
  return fail(
    'the pushed authorization request was refused',
    cause,
    'fix what the error_description names; the PAR parameters diagnose sent are in the details',
    details,
  );
}

/** Check 8b: the access token's cnf.x5t#S256 is the certificate's thumbprint. */
export async function checkTokenBinding(options: {
  endpoints: ServerEndpoints;
  tls: TlsMaterial;
  clientId: string | undefined;
  verdict: TokenVerdict | undefined;
  local: LocalCredentials;
}): Promise<CheckOutcome> {
  const { verdict, local, clientId } = options;
  if (clientId === undefined) return skip('needs --client-id (a client_credentials token to look at)');
  if (verdict?.kind !== 'issued') {
    return skip(
      `unchecked: no client_credentials token was issued${verdict?.kind === 'authenticated' ? ` (${verdict.error}${verdict.description === '' ? '' : `: ${verdict.description}`})` : ''}`,
    );
  }
  let cnf: unknown;
  let via: string | undefined;
  if (options.endpoints.introspection !== undefined) {
    const answer = await httpsRequest(options.endpoints.introspection, options.tls, { form: { client_id: clientId, token: verdict.accessToken } });
    const body = answer.json as Record<string, unknown> | undefined;
    if (answer.status === 200 && body?.active === true) {
      cnf = body.cnf;
      via = 'read by introspection, RFC 7662';
    }
  }
  if (via === undefined && verdict.accessToken.split('.').length === 3) {
    try {
      cnf = decodeJwt(verdict.accessToken).cnf;
      via = 'read from the JWT access token, RFC 9068';
    } catch {
      via = undefined;
    }
  }
  if (via === undefined) return skip('unchecked: the token could not be introspected by this client and is not a JWT');
  const bound = (cnf as Record<string, unknown> | undefined)?.['x5t#S256'];
  const details = { via, certificateThumbprint: local.thumbprint, ...(typeof bound === 'string' ? { tokenThumbprint: bound } : {}) };
  if (bound === local.thumbprint) return pass(`the access token is bound to this certificate: cnf.x5t#S256 = ${local.thumbprint} (${via})`, details);
  if (bound === undefined) {
    const jkt = (cnf as Record<string, unknown> | undefined)?.jkt;
    return fail(
      'the access token is not bound to the certificate',
      jkt === undefined
        ? `the token has no cnf.x5t#S256 (${via}): anyone holding it could use it`
        : `the token is bound to a DPoP key (cnf.jkt), not to the certificate (${via})`,
      'register the client with tls_client_certificate_bound_access_tokens: true (FAPI 2.0 SP §5.3.2.1 wants sender-constrained tokens)',
      details,
    );
  }
  return fail(
    'the access token is bound to another certificate',
    `cnf.x5t#S256 is ${String(bound)}; this certificate's thumbprint is ${local.thumbprint} (${via})`,
    'present the same certificate to the APIs that you present to the token endpoint',
    details,
  );
}

import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { importJWK, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import type { UpstreamIdpConfig } from '../config/schema.ts';
import { FederationFailure } from './federation-failure.ts';

/*
 * Moat as a relying party of the bank's OpenID Provider, with oauth4webapi doing the protocol:
 * authorization code with PKCE S256, PAR when the IdP advertises it (RFC 9126), client
 * authentication by private_key_jwt (RFC 7523) or mTLS (RFC 8705), and every check of the answer —
 * state, `iss` in the authorization response (RFC 9207), the ID token's nonce, audience, expiry,
 * auth_time against max_age (OIDC Core §3.1.3.7), and its signature against the IdP's JWKS.
 * Each failure is a FederationFailure with its kind; nothing here knows about HTTP routes or pages.
 */

/** The path of Moat's redirect URI at the IdP; the bank registers `<Moat issuer>/federation/callback`. */
export const FEDERATION_CALLBACK_PATH = '/federation/callback';

/** How long the IdP's discovery document is reused before it is read again. */
const METADATA_TTL_MS = 5 * 60_000;

/** What a sign-in in progress must remember until the callback: kept server-side, never in the browser. */
export interface PendingSignIn {
  state: string;
  nonce: string;
  codeVerifier: string;
}

/** Who the IdP says signed in, and how. */
export interface FederatedIdentity {
  /** The value of customers.oidc.customerIdClaim: the customer's id in Moat. */
  customerId: string;
  /** The value of customers.oidc.nameClaim, or the id when the IdP sent no name. */
  name: string;
  acr?: string;
  amr: string[];
  /** Seconds since the epoch (OIDC Core §2), when the IdP says. */
  authTime?: number;
}

export interface UpstreamIdp {
  readonly issuer: string;
  /** Starts a sign-in: where to send the customer's browser, and what the callback will need. */
  begin(): Promise<{ authorizationUrl: URL; pending: PendingSignIn }>;
  /** Finishes a sign-in from the callback's query parameters: checks them, redeems the code, validates the ID token. */
  complete(callbackParameters: URLSearchParams, pending: PendingSignIn): Promise<FederatedIdentity>;
  /** Reads the IdP's metadata afresh and says what it offers (`moat config validate --connect`). */
  probe(): Promise<{ issuer: string; par: boolean; issParameter: boolean; mtlsAliases: boolean }>;
  close(): Promise<void>;
}

/**
 * Reads the files customers.oidc names (a missing or unusable one stops start-up, naming its key);
 * the IdP itself is first contacted when a customer signs in.
 */
export async function createUpstreamIdp(config: UpstreamIdpConfig, moatIssuer: string): Promise<UpstreamIdp> {
  const issuer = new URL(config.issuer);
  const redirectUri = new URL(FEDERATION_CALLBACK_PATH, moatIssuer).toString();
  const mtls = config.clientAuth.method === 'tls_client_auth';
  // undici (~5 MiB of heap) is loaded only when customers.oidc is configured (issue 20 §6).
  const { Agent, fetch: undiciFetch } = await import('undici');
  const agent = new Agent({
    connect: {
      // A private CA is trusted besides the system's, never instead of them.
      ...(config.caFile === undefined ? {} : { ca: [...rootCertificates, readConfiguredFile('customers.oidc.caFile', config.caFile).toString('utf8')] }),
      ...(config.clientAuth.method === 'tls_client_auth'
        ? {
            cert: readConfiguredFile('customers.oidc.clientAuth.certFile', config.clientAuth.certFile),
            key: readConfiguredFile('customers.oidc.clientAuth.keyFile', config.clientAuth.keyFile),
          }
        : {}),
    },
  });
  const customFetch = timedFetch(undiciFetch, agent, config.timeoutMs);
  // RFC 8705 §5: with mTLS, the token and PAR endpoints may live at their aliases.
  const client: oauth.Client = { client_id: config.clientId, ...(mtls ? { use_mtls_endpoint_aliases: true } : {}) };
  const clientAuth = config.clientAuth.method === 'tls_client_auth' ? oauth.TlsClientAuth() : await privateKeyJwtAuth(config.clientAuth.jwkFile);
  const options = { [oauth.customFetch]: customFetch };
  const jwksCache: oauth.JWKSCacheInput = {};

  let metadata: { as: oauth.AuthorizationServer; until: number } | undefined;
  const discover = async (fresh = false): Promise<oauth.AuthorizationServer> => {
    if (!fresh && metadata !== undefined && metadata.until > Date.now()) return metadata.as;
    const as = await upstreamCall(async () => oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...options, algorithm: 'oidc' })));
    if (as.token_endpoint === undefined || as.authorization_endpoint === undefined || as.jwks_uri === undefined) {
      throw new FederationFailure('bad_metadata', 'the IdP metadata lacks an authorization, token or JWKS endpoint');
    }
    metadata = { as, until: Date.now() + METADATA_TTL_MS };
    return as;
  };

  return {
    issuer: config.issuer,
    async begin() {
      const as = await discover();
      const pending: PendingSignIn = {
        state: oauth.generateRandomState(),
        nonce: oauth.generateRandomNonce(),
        codeVerifier: oauth.generateRandomCodeVerifier(),
      };
      const params = new URLSearchParams({
        client_id: config.clientId,
        response_type: 'code',
        redirect_uri: redirectUri,
        scope: config.scope,
        state: pending.state,
        nonce: pending.nonce,
        code_challenge: await oauth.calculatePKCECodeChallenge(pending.codeVerifier),
        code_challenge_method: 'S256',
        ...(config.maxAgeSeconds === undefined ? {} : { max_age: String(config.maxAgeSeconds) }),
        ...(config.sca.requestAcrValues === undefined ? {} : { acr_values: config.sca.requestAcrValues.join(' ') }),
        // OIDC Core §5.5: an IdP includes acr, amr and auth_time, and the mapped claims, in the ID token when asked.
        ...(as.claims_parameter_supported === true ? { claims: JSON.stringify({ id_token: idTokenClaimsRequest(config) }) } : {}),
      });
      const authorizationUrl = new URL(as.authorization_endpoint!);
      if (advertisesPar(as)) {
        // RFC 9126: the request goes to the IdP over the back channel; the browser carries only its handle.
        const pushed = await upstreamCall(async () =>
          oauth.processPushedAuthorizationResponse(as, client, await oauth.pushedAuthorizationRequest(as, client, clientAuth, params, options)),
        );
        authorizationUrl.search = new URLSearchParams({ client_id: config.clientId, request_uri: pushed.request_uri }).toString();
      } else {
        authorizationUrl.search = params.toString();
      }
      return { authorizationUrl, pending };
    },
    async complete(callbackParameters, pending) {
      const as = await discover();
      let code: URLSearchParams;
      try {
        code = oauth.validateAuthResponse(as, client, callbackParameters, pending.state);
      } catch (err) {
        throw classifyAuthorizationResponse(err);
      }
      const response = await upstreamCall(() => oauth.authorizationCodeGrantRequest(as, client, clientAuth, code, redirectUri, pending.codeVerifier, options));
      let claims: oauth.IDToken;
      try {
        const tokens = await oauth.processAuthorizationCodeResponse(as, client, response, {
          expectedNonce: pending.nonce,
          requireIdToken: true,
          maxAge: config.maxAgeSeconds ?? oauth.skipAuthTimeCheck,
        });
        // The token endpoint's TLS already vouches for the issuer; the signature is checked too, so a
        // token that was not made with the IdP's published keys is never accepted.
        await upstreamCall(() => oauth.validateApplicationLevelSignature(as, response, { ...options, [oauth.jwksCache]: jwksCache }), 'invalid_id_token');
        claims = oauth.getValidatedIdTokenClaims(tokens)!;
      } catch (err) {
        throw err instanceof FederationFailure ? err : classifyTokenResponse(err);
      }
      return identityFrom(claims, config);
    },
    async probe() {
      const as = await discover(true);
      return {
        issuer: as.issuer,
        par: advertisesPar(as),
        issParameter: as.authorization_response_iss_parameter_supported === true,
        mtlsAliases: as.mtls_endpoint_aliases !== undefined,
      };
    },
    close: () => agent.close(),
  };
}

/** The ID token claims Moat needs: who (the configured claims) and how they authenticated. */
function idTokenClaimsRequest(config: UpstreamIdpConfig): Record<string, null | { essential: true }> {
  return { [config.customerIdClaim]: { essential: true }, [config.nameClaim]: null, acr: null, amr: null, auth_time: null };
}

/** RFC 9126 §5: the IdP advertises PAR by its endpoint (under mTLS, possibly only as an alias). */
function advertisesPar(as: oauth.AuthorizationServer): boolean {
  return as.pushed_authorization_request_endpoint !== undefined || as.mtls_endpoint_aliases?.pushed_authorization_request_endpoint !== undefined;
}

/** The customer's id and name from the configured claims; an ID token without the id is refused. */
function identityFrom(claims: oauth.IDToken, config: UpstreamIdpConfig): FederatedIdentity {
  const id = claims[config.customerIdClaim];
  if (typeof id !== 'string' || id === '' || id.length > 255 || id.includes('\0')) {
    throw new FederationFailure('invalid_id_token', `the ID token has no usable ${config.customerIdClaim} claim (customers.oidc.customerIdClaim)`);
  }
  const name = claims[config.nameClaim];
  const amr = Array.isArray(claims.amr) ? claims.amr.filter((m): m is string => typeof m === 'string') : [];
  return {
    customerId: id,
    name: typeof name === 'string' && name.trim() !== '' ? name.slice(0, 200) : id,
    ...(typeof claims.acr === 'string' ? { acr: claims.acr } : {}),
    amr,
    ...(typeof claims.auth_time === 'number' ? { authTime: claims.auth_time } : {}),
  };
}

async function privateKeyJwtAuth(jwkFile: string): Promise<oauth.ClientAuth> {
  const where = 'customers.oidc.clientAuth.jwkFile';
  let jwk: JWK;
  try {
    jwk = JSON.parse(readConfiguredFile(where, jwkFile).toString('utf8')) as JWK;
  } catch (err) {
    if (err instanceof SyntaxError) throw new Error(`${where}: ${jwkFile} is not a JSON Web Key (${err.message})`);
    throw err;
  }
  // FAPI 2.0 SP §5.4.1: the assertion is signed with PS256, ES256 or EdDSA.
  if (typeof jwk.alg !== 'string' || !['PS256', 'ES256', 'EdDSA'].includes(jwk.alg))
    throw new Error(`${where}: the JWK in ${jwkFile} needs alg PS256, ES256 or EdDSA`);
  let key: Awaited<ReturnType<typeof importJWK>>;
  try {
    key = await importJWK(jwk, jwk.alg);
  } catch (err) {
    throw new Error(`${where}: ${jwkFile} is not a usable ${jwk.alg} key (${(err as Error).message})`);
  }
  if (!(key instanceof CryptoKey) || key.type !== 'private') throw new Error(`${where}: ${jwkFile} holds no private key`);
  return oauth.PrivateKeyJwt({ key, ...(jwk.kid === undefined ? {} : { kid: jwk.kid }) });
}

function readConfiguredFile(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/**
 * fetch through the IdP's agent, bounded by the timeout from the request's start to its body's end.
 * The response is rebuilt in this realm's Response class, which oauth4webapi checks for.
 */
// undici's types by an `import()` type query, not `import type`: see optional-packages-loaded-lazily
// in .dependency-cruiser.cjs.
type Undici = typeof import('undici');

function timedFetch(undiciFetch: Undici['fetch'], agent: InstanceType<Undici['Agent']>, timeoutMs: number): typeof fetch {
  return (async (url: string | URL | Request, init?: RequestInit) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const res = await undiciFetch(url as string, { ...(init as object), dispatcher: agent, signal, redirect: 'manual' } as Parameters<typeof undiciFetch>[1]);
    const body = await res.arrayBuffer();
    return new Response([101, 204, 205, 304].includes(res.status) ? null : body, {
      status: res.status,
      statusText: res.statusText,
      headers: new Headers([...res.headers]),
    });
  }) as typeof fetch;
}

/** A call to the IdP, its failures classified: network, timeout, an error answer, or `otherwise`. */
async function upstreamCall<T>(call: () => Promise<T>, otherwise: 'error_response' | 'invalid_id_token' = 'error_response'): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof FederationFailure) throw err;
    const transport = transportFailure(err);
    if (transport !== undefined) throw transport;
    if (err instanceof oauth.OperationProcessingError && [oauth.INVALID_SERVER_METADATA, oauth.MISSING_SERVER_METADATA].includes(err.code ?? '')) {
      throw new FederationFailure('bad_metadata', err.message, { cause: err });
    }
    throw new FederationFailure(otherwise, describeUpstreamError(err), { cause: err });
  }
}

function transportFailure(err: unknown): FederationFailure | undefined {
  if (err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new FederationFailure('timeout', 'the IdP did not answer in time (customers.oidc.timeoutMs)', { cause: err });
  }
  if (err instanceof TypeError && err.message === 'fetch failed') {
    const cause = err.cause as { name?: string; code?: string } | undefined;
    if (cause?.name === 'TimeoutError' || cause?.code === 'UND_ERR_CONNECT_TIMEOUT' || cause?.code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new FederationFailure('timeout', 'the IdP did not answer in time (customers.oidc.timeoutMs)', { cause: err });
    }
    return new FederationFailure('unreachable', `the IdP could not be reached${cause?.code === undefined ? '' : ` (${cause.code})`}`, { cause: err });
  }
  return undefined;
}

/** The authorization response: an error from the IdP, another issuer (RFC 9207), a state not ours. */
function classifyAuthorizationResponse(err: unknown): FederationFailure {
  if (err instanceof oauth.AuthorizationResponseError) {
    // OIDC Core §3.1.2.6: the customer declined or could not sign in; the IdP's own trouble is not theirs.
    const byCustomer = ['access_denied', 'login_required', 'consent_required', 'interaction_required', 'account_selection_required'].includes(err.error);
    return new FederationFailure(byCustomer ? 'customer_refused' : 'error_response', `the IdP answered ${err.error}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : '';
  if (message.includes('"iss"')) return new FederationFailure('wrong_issuer', 'the authorization response names another issuer (RFC 9207)', { cause: err });
  if (message.includes('"state"')) return new FederationFailure('unknown_state', 'the authorization response state is not the one sent', { cause: err });
  return new FederationFailure('error_response', message || 'the authorization response is malformed', { cause: err });
}

/** The token response: an OAuth error from the IdP, or an ID token that fails a check. */
function classifyTokenResponse(err: unknown): FederationFailure {
  if (err instanceof oauth.ResponseBodyError) return new FederationFailure('error_response', describeUpstreamError(err), { cause: err });
  const transport = transportFailure(err);
  if (transport !== undefined) return transport;
  if (err instanceof oauth.OperationProcessingError) {
    const claim = (err.cause as { claim?: string } | undefined)?.claim;
    if (err.code === oauth.JWT_CLAIM_COMPARISON && claim === 'nonce') {
      return new FederationFailure('wrong_nonce', 'the ID token nonce is not the one sent', { cause: err });
    }
    if (err.code === oauth.RESPONSE_IS_NOT_JSON || err.code === oauth.RESPONSE_IS_NOT_CONFORM) {
      return new FederationFailure('error_response', describeUpstreamError(err), { cause: err });
    }
  }
  return new FederationFailure('invalid_id_token', err instanceof Error ? err.message : 'the ID token is not acceptable', { cause: err });
}

/** The IdP's answer in a few words for the operator's log: HTTP status and OAuth error code, never a body. */
function describeUpstreamError(err: unknown): string {
  if (err instanceof oauth.ResponseBodyError) return `the IdP answered HTTP ${err.status} ${err.error}`;
  const response = err instanceof Error ? err.cause : undefined;
  if (response instanceof Response) return `${(err as Error).message}: HTTP ${response.status}`;
  return err instanceof Error ? err.message : 'the IdP call failed';
}

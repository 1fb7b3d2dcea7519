import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { certificateThumbprint, readCredentials, readSigningKey, tlsFetch, type Fetch } from './credentials.ts';
import { SANDBOX_CUSTOMER, sandboxCustomerApproves } from './sandbox-customer.ts';

/*
 * An example TPP (third-party provider) client for Moat, from its sandbox credentials to its first
 * API call, with oauth4webapi doing the protocol and undici the mutual TLS:
 *
 *   1. discovery                    OpenID Connect Discovery / RFC 8414
 *   2. dynamic client registration  RFC 7591, with the software statement, over mTLS
 *   3. pushed authorization request RFC 9126, PKCE S256 (RFC 7636), authorization_details (RFC 9396)
 *   4. the customer signs in and approves (in the sandbox: automated, or in your browser)
 *   5. token request                over mTLS: the access token is bound to the certificate (RFC 8705)
 *   6. introspection                RFC 7662: active, and cnf.x5t#S256 = this certificate's thumbprint
 *   7. a first API call             the sandbox API, over the same certificate
 *
 * With --auth private_key_jwt --dpop, the other way FAPI 2.0 allows (SP §5.3.2.1): the client
 * authenticates with a JWT signed by the key in the software statement's software_jwks (RFC 7523,
 * `aud` = the issuer) and its tokens are bound to a DPoP key it makes for itself (RFC 9449), the code
 * too (`dpop_jkt` at PAR). Registration is still over mutual TLS — the transport certificate proves
 * the organisation — but nothing after it presents a certificate.
 *
 * Usage: npm run first-call -- --credentials ./acme (through scripts/with-node.sh, which fetches
 * Node 24 where the machine's Node is too old to run .ts), or node examples/tpp-client/main.ts
 * --issuer https://localhost:8443 --credentials ./acme (see README.md next to this file).
 *
 * On success the last line of its output is one JSON object, for scripts (scripts/time-to-first-call.ts):
 * {"firstCall":"done","certificateBound":true,"x5t#S256":…,"introspectedX5tS256":…,"apiStatus":200,…}.
 */

/** `npm start`'s issuer; MOAT_ISSUER (the variable that moves the server and the CLI) moves it here too. */
const DEFAULT_ISSUER = process.env.MOAT_ISSUER ?? 'https://localhost:8443';

const USAGE = `usage: npm run first-call -- [--issuer URL] [--credentials DIR] [--auth METHOD] [--dpop] [--browser] [--print-token]
   or: node examples/tpp-client/main.ts [options]

  --issuer URL        the authorization server (default $MOAT_ISSUER, else https://localhost:8443)
  --credentials DIR   what \`moat sandbox tpp --out DIR\` wrote (default ./acme)
  --auth METHOD       client authentication: tls_client_auth (default) or private_key_jwt
  --dpop              bind the tokens to a DPoP key (RFC 9449) instead of the transport certificate
  --browser           you sign in and approve in your browser instead of the sandbox customer helper
  --print-token       print the access token, to call the sandbox API yourself afterwards
`;

/** A step the server refused, as an OAuth error (RFC 6749 §5.2, RFC 7591 §3.2.2, RFC 6750 §3). */
class OAuthFailure extends Error {
  readonly error: string;
  readonly errorDescription: string | undefined;
  constructor(error: string, errorDescription?: string) {
    super(errorDescription === undefined ? error : `${error}: ${errorDescription}`);
    this.name = 'OAuthFailure';
    this.error = error;
    this.errorDescription = errorDescription;
  }
}

const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(argv: string[]): Promise<number> {
  let options;
  try {
    ({ values: options } = parseArgs({
      args: argv,
      options: {
        issuer: { type: 'string', default: DEFAULT_ISSUER },
        credentials: { type: 'string', default: './acme' },
        auth: { type: 'string', default: 'tls_client_auth' },
        dpop: { type: 'boolean', default: false },
        browser: { type: 'boolean', default: false },
        'print-token': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const auth = options.auth;
  if (auth !== 'tls_client_auth' && auth !== 'private_key_jwt') {
    process.stderr.write(`--auth must be tls_client_auth or private_key_jwt, not ${auth}\n${USAGE}`);
    return 2;
  }

  const credentials = readCredentials(options.credentials);
  const thumbprint = certificateThumbprint(credentials.certPem);
  // Registration always goes over mutual TLS with the transport certificate. After it, the client
  // presents the certificate when it authenticates with it (tls_client_auth) or its tokens are
  // bound to it; a private_key_jwt client with DPoP-bound tokens needs no certificate at all.
  const tpp = tlsFetch(credentials.serverCaPem, credentials);
  const withCertificate = auth === 'tls_client_auth' || !options.dpop;
  const connection = withCertificate ? tpp : tlsFetch(credentials.serverCaPem);
  const http = { [oauth.customFetch]: connection.fetch };
  const redirectUri = credentials.registration.redirect_uris[0]!;
  say(`Example TPP, issuer ${options.issuer}, credentials ${options.credentials}`);
  say(`  transport certificate thumbprint (x5t#S256): ${thumbprint}`);
  // The client assertion's key: the private half of the SSA's software_jwks.
  const signingKey = auth === 'private_key_jwt' ? await readSigningKey(options.credentials) : undefined;
  const clientAuth = signingKey === undefined ? oauth.TlsClientAuth() : oauth.PrivateKeyJwt(signingKey);
  // The DPoP key: the client's own, made here, never registered anywhere (RFC 9449 §2). Its RFC 7638
  // thumbprint is what the code (dpop_jkt) and the access token (cnf.jkt) are bound to.
  const dpopKey = options.dpop ? await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']) : undefined;
  const jkt = dpopKey === undefined ? undefined : await calculateJwkThumbprint(await exportJWK(dpopKey.publicKey));

  let step = '';
  try {
    // 1. Discovery: where the endpoints are and what the server supports.
    step = '1 (discovery)';
    const issuer = new URL(options.issuer);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...http, algorithm: 'oidc' }));
    say('1. Discovery: read the server metadata');
    say(`  PAR endpoint ${as.pushed_authorization_request_endpoint}, token endpoint ${as.token_endpoint}`);
    if (as.registration_endpoint === undefined) throw new Error('the server publishes no registration_endpoint');

    // 2. Registration (RFC 7591): the software statement says who we are, the certificate proves it.
    step = '2 (registration)';
    const registrationEndpoint = as.mtls_endpoint_aliases?.registration_endpoint ?? as.registration_endpoint;
    const registered = await register(tpp.fetch, registrationEndpoint, registrationBody(credentials.registration, auth, options.dpop));
    // oauth4webapi's Client is the registered metadata; with mTLS endpoint aliases (RFC 8705 §5)
    // published, a client that presents its certificate sends every request to them.
    const client: oauth.Client = { ...registered, use_mtls_endpoint_aliases: withCertificate };
    say('2. Registration: registered over mutual TLS with the software statement');
    say(`  client_id: ${client.client_id}`);
    say(
      signingKey === undefined
        ? `  client authentication: ${String(registered.token_endpoint_auth_method)} as ${String(registered.tls_client_auth_subject_dn)}`
        : `  client authentication: ${String(registered.token_endpoint_auth_method)} with the signing key ${signingKey.kid} (the software statement's software_jwks)`,
    );
    if (options.dpop) say(`  DPoP-bound access tokens: ${registered.dpop_bound_access_tokens === true ? 'yes' : 'no'}`);
    else say(`  certificate-bound access tokens: ${registered.tls_client_certificate_bound_access_tokens === true ? 'yes' : 'no'}`);
    const dpop = dpopKey === undefined ? undefined : oauth.DPoP(client, dpopKey);

    // 3. PAR (RFC 9126) with PKCE S256: the request goes to the server directly, over mTLS; the
    //    browser only carries a reference to it. What we ask for: read account details and balances.
    step = '3 (pushed authorization request)';
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const authorizationDetails = [
      {
        type: 'account_information',
        permissions: ['ReadAccountsDetail', 'ReadBalances'],
        expirationDateTime: new Date(Date.now() + 90 * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      },
    ];
    const par = await oauth.pushedAuthorizationRequest(
      as,
      client,
      clientAuth,
      {
        response_type: 'code',
        redirect_uri: redirectUri,
        scope: 'openid accounts',
        code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        authorization_details: JSON.stringify(authorizationDetails),
        // RFC 9449 §10: the code will be redeemable only with a proof of this key (FAPI 2.0 SP §5.3.2.1).
        ...(jkt === undefined ? {} : { dpop_jkt: jkt }),
      },
      http,
    );
    const { request_uri: requestUri, expires_in: parExpiresIn } = await oauth.processPushedAuthorizationResponse(as, client, par);
    say('3. Pushed authorization request: PKCE S256, account details and balances for 90 days');
    say(`  request_uri: ${requestUri} (use within ${parExpiresIn} s)`);
    if (jkt !== undefined) say(`  the code is bound to our DPoP key: dpop_jkt ${jkt}`);

    // 4. The customer: sent to the bank with the request_uri, back at our redirect_uri with a code.
    step = '4 (the customer)';
    const authorizationUrl = new URL(as.authorization_endpoint!);
    authorizationUrl.searchParams.set('client_id', client.client_id);
    authorizationUrl.searchParams.set('request_uri', requestUri);
    let callback: URL;
    if (options.browser) {
      say(
        '4. The customer: open this address in your browser, sign in (alice / alice-sandbox, then the code for TOTP secret MOATSANDBOXALICETOTPSECRET234567) and press Allow',
      );
      say(`  ${authorizationUrl.href}`);
      callback = await askForCallback(redirectUri);
    } else {
      const customerBrowser = tlsFetch(credentials.serverCaPem);
      try {
        callback = await sandboxCustomerApproves(authorizationUrl, customerBrowser.fetch);
      } finally {
        await customerBrowser.close();
      }
      say(`4. The customer (sandbox customer helper, standing in for a browser): ${SANDBOX_CUSTOMER.username} signed in and pressed Allow`);
    }
    // RFC 9207: the response names its issuer; oauth4webapi checks it, the state, and turns an
    // error response (access_denied, …) into an AuthorizationResponseError.
    const callbackParams = oauth.validateAuthResponse(as, client, callback, state);
    say(`  back at ${callback.origin}${callback.pathname} with an authorization code`);

    // 5. Token request over the same certificate: the access token is bound to it (RFC 8705 §3);
    //    or with a DPoP proof: the access token is bound to the DPoP key (RFC 9449 §5).
    step = '5 (token)';
    const tokens = await retryingDPoPNonce(dpop, async () =>
      oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(as, client, clientAuth, callbackParams, redirectUri, codeVerifier, {
          ...http,
          ...(dpop === undefined ? {} : { DPoP: dpop }),
        }),
      ),
    );
    const idToken = oauth.getValidatedIdTokenClaims(tokens);
    say(
      dpop === undefined
        ? `5. Token: exchanged the code (with the PKCE verifier) ${signingKey === undefined ? 'over mutual TLS' : 'with a client assertion, over mutual TLS'}`
        : `5. Token: exchanged the code (with the PKCE verifier) with ${signingKey === undefined ? 'mutual TLS' : 'a client assertion'} and a DPoP proof`,
    );
    say(`  access token: ${tokens.token_type}, expires in ${tokens.expires_in} s, scope ${tokens.scope}`);
    say(`  consent: ${String(tokens.consent_id)}`);
    say(`  ID token for: ${idToken?.sub ?? '(none)'}; refresh token: ${tokens.refresh_token === undefined ? 'no' : 'yes'}`);
    if (options['print-token']) say(`  access token value: ${tokens.access_token}`);

    // 6. Introspection (RFC 7662): active, and bound to this certificate's thumbprint (or DPoP key's).
    step = '6 (introspection)';
    const introspection = await oauth.processIntrospectionResponse(
      as,
      client,
      await oauth.introspectionRequest(as, client, clientAuth, tokens.access_token, http),
    );
    if (!introspection.active) throw new OAuthFailure('inactive_token', 'introspection says the new access token is not active');
    say('6. Introspection: the token is active');
    say(`  subject ${String(introspection.sub)}, client ${String(introspection.client_id)}, audience ${String(introspection.aud)}`);
    const bound = jkt === undefined ? introspection.cnf?.['x5t#S256'] : introspection.cnf?.jkt;
    if (jkt === undefined) {
      say(`  bound to certificate x5t#S256: ${String(bound)}`);
      say(`  our certificate's x5t#S256:    ${thumbprint}`);
      if (bound !== thumbprint) throw new OAuthFailure('unbound_token', 'the access token is not bound to the certificate it was requested with');
      say('  the token is bound to our transport certificate: useless without its private key');
    } else {
      say(`  bound to DPoP key jkt: ${String(bound)}`);
      say(`  our DPoP key's jkt:    ${jkt}`);
      if (bound !== jkt) throw new OAuthFailure('unbound_token', 'the access token is not bound to the DPoP key it was requested with');
      say('  the token is bound to our DPoP key: useless without its private key');
    }

    // 7. A first API call: the sandbox API accepts the token only over the certificate it is bound
    //    to, or with a fresh DPoP proof of its key (RFC 9449 §7, which covers the token: `ath`).
    step = '7 (sandbox API)';
    const apiUrl = new URL(`${as.issuer.replace(/\/$/, '')}/sandbox-api/accounts`);
    const api = await retryingDPoPNonce(dpop, () =>
      oauth.protectedResourceRequest(tokens.access_token, 'GET', apiUrl, undefined, undefined, { ...http, ...(dpop === undefined ? {} : { DPoP: dpop }) }),
    );
    const body = (await api.json()) as {
      error?: string;
      error_description?: string;
      data?: { accounts?: { accountId: string; identification?: string; balance?: string }[] };
    };
    if (!api.ok) throw new OAuthFailure(body.error ?? `http_${api.status}`, body.error_description);
    const accounts = body.data?.accounts ?? [];
    say(`7. Sandbox API: GET ${apiUrl.pathname} answered ${api.status} with ${accounts.length} account(s)`);
    for (const a of accounts) say(`  ${a.accountId}${a.identification === undefined ? '' : ` (${a.identification})`}: balance ${String(a.balance)}`);

    if (jkt === undefined) {
      say('Done: registered, consented, got a certificate-bound token and called the API with it.');
      // One line for scripts: the thumbprint check's result, as checked in step 6.
      say(
        JSON.stringify({
          firstCall: 'done',
          certificateBound: bound === thumbprint,
          'x5t#S256': thumbprint,
          introspectedX5tS256: bound,
          clientId: client.client_id,
          apiStatus: api.status,
          accounts: accounts.length,
        }),
      );
    } else {
      say('Done: registered, consented, got a DPoP-bound token and called the API with it.');
      say(
        JSON.stringify({
          firstCall: 'done',
          auth,
          dpopBound: bound === jkt,
          jkt,
          introspectedJkt: bound,
          clientId: client.client_id,
          apiStatus: api.status,
          accounts: accounts.length,
        }),
      );
    }
    return 0;
  } catch (err) {
    process.stderr.write(`FAILED at step ${step}: ${describe(err)}\n`);
    return 1;
  } finally {
    await tpp.close();
    if (connection !== tpp) await connection.close();
  }
}

/**
 * The registration request for the chosen client authentication and sender constraint, from the
 * credentials' registration.json (written for tls_client_auth with certificate-bound tokens). The
 * client's keys are never sent: the bank takes them from the software statement's software_jwks.
 */
function registrationBody(registration: Record<string, unknown>, auth: 'tls_client_auth' | 'private_key_jwt', dpop: boolean): Record<string, unknown> {
  const { tls_client_auth_subject_dn: subjectDn, tls_client_certificate_bound_access_tokens: _bound, ...common } = registration;
  return {
    ...common,
    token_endpoint_auth_method: auth,
    ...(auth === 'tls_client_auth' ? { tls_client_auth_subject_dn: subjectDn } : { token_endpoint_auth_signing_alg: 'ES256' }),
    ...(dpop ? { dpop_bound_access_tokens: true } : { tls_client_certificate_bound_access_tokens: true }),
  };
}

/**
 * RFC 9449 §8: a server may answer a DPoP request with `use_dpop_nonce` and a nonce; oauth4webapi
 * keeps the nonce, so sending the request once more is enough.
 */
async function retryingDPoPNonce<T>(dpop: oauth.DPoPHandle | undefined, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (err) {
    if (dpop === undefined || !oauth.isDPoPNonceError(err)) throw err;
    return send();
  }
}

/** RFC 7591 §3.1: POST the client metadata (with the software statement) as JSON; 201 on success. */
async function register(fetch: Fetch, endpoint: string, metadata: Record<string, unknown>): Promise<Record<string, unknown> & { client_id: string }> {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(metadata),
  });
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.status !== 201 || typeof body.client_id !== 'string') {
    // RFC 7591 §3.2.2: a refusal is {error, error_description}.
    throw new OAuthFailure(
      typeof body.error === 'string' ? body.error : `http_${res.status}`,
      typeof body.error_description === 'string' ? body.error_description : undefined,
    );
  }
  return body as Record<string, unknown> & { client_id: string };
}

/** --browser: the customer approves in a real browser, which lands on our redirect_uri. */
async function askForCallback(redirectUri: string): Promise<URL> {
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    say(`  Your browser then goes to ${redirectUri}?code=…; nothing listens there in this example, so`);
    const pasted = await prompt.question("  paste the address from the browser's address bar here: ");
    if (!URL.canParse(pasted.trim())) throw new Error('that is not a URL');
    return new URL(pasted.trim());
  } finally {
    prompt.close();
  }
}

/** What went wrong, in one line: the OAuth error code and its description where there is one. */
function describe(err: unknown): string {
  if (err instanceof oauth.ResponseBodyError || err instanceof oauth.AuthorizationResponseError) {
    return `${err.error}${err.error_description === undefined ? '' : `: ${err.error_description}`}`;
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    // RFC 6750 §3: a resource server's refusal is in the WWW-Authenticate challenge.
    const { error, error_description: description } = err.cause[0]?.parameters ?? {};
    return `${error ?? `HTTP ${err.status}`}${description === undefined ? '' : `: ${description}`}`;
  }
  if (err instanceof OAuthFailure) return err.message;
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}

process.exitCode = await main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`FAILED: ${describe(err)}\n`);
  return 1;
});

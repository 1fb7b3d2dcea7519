import * as oauth from 'oauth4webapi';
import { getSetCookies, Headers, type Dispatcher } from 'undici';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';

/*
 * The requests a TPP, a customer's browser and a resource server make, kept lean so the load
 * generator spends as little CPU as it can (it shares the machine with the server): plain undici
 * requests, no response re-wrapping. The login and consent steps follow the form contract Moat
 * documents (a hidden `csrf` field in each page; README "Automating sandbox consent").
 */

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface Send {
  method: 'GET' | 'POST';
  path: string;
  form?: [string, string][] | Record<string, string>;
  json?: unknown;
  headers?: Record<string, string>;
  /** Close the connection after the response (a new TLS handshake for the next request). */
  reset?: boolean;
}

export async function send(pool: Dispatcher, request: Send): Promise<Reply> {
  const [body, type] =
    request.form !== undefined
      ? [new URLSearchParams(request.form).toString(), 'application/x-www-form-urlencoded']
      : request.json !== undefined
        ? [JSON.stringify(request.json), 'application/json']
        : [undefined, undefined];
  const {
    statusCode,
    headers,
    body: stream,
  } = await pool.request({
    method: request.method,
    path: request.path,
    headers: { ...(type === undefined ? {} : { 'content-type': type }), ...request.headers },
    ...(body === undefined ? {} : { body }),
    ...(request.reset === true ? { reset: true } : {}),
  });
  return { status: statusCode, headers, text: await stream.text() };
}

/** The JSON body of a response that must have `status`; anything else fails the operation. */
function expectJson(reply: Reply, status: number, what: string): Record<string, unknown> {
  if (reply.status !== status) throw new Error(`${what}: HTTP ${reply.status} ${reply.text.slice(0, 200)}`);
  return JSON.parse(reply.text) as Record<string, unknown>;
}

/** A registered client as the benchmark uses it. */
export interface BenchClient {
  clientId: string;
  redirectUri: string;
}

/** POST /token; the response must be a 200 with an access token. */
export async function tokenRequest(pool: Dispatcher, form: Record<string, string>, options: { reset?: boolean } = {}): Promise<Record<string, unknown>> {
  const tokens = expectJson(await send(pool, { method: 'POST', path: '/token', form, ...options }), 200, 'token');
  if (typeof tokens.access_token !== 'string') throw new Error('token: no access_token in the response');
  return tokens;
}

export function clientCredentials(pool: Dispatcher, client: BenchClient, options: { reset?: boolean } = {}): Promise<Record<string, unknown>> {
  return tokenRequest(pool, { grant_type: 'client_credentials', client_id: client.clientId, scope: 'accounts' }, options);
}

export async function redeemCode(pool: Dispatcher, client: BenchClient, code: string, codeVerifier: string): Promise<Record<string, unknown>> {
  const tokens = await tokenRequest(pool, {
    grant_type: 'authorization_code',
    client_id: client.clientId,
    code,
    redirect_uri: client.redirectUri,
    code_verifier: codeVerifier,
  });
  if (typeof tokens.id_token !== 'string') throw new Error('token: no id_token for an openid request');
  return tokens;
}

/** A resource server's introspection (RFC 7662); the token must be active. */
export async function introspect(pool: Dispatcher, resourceServerClientId: string, token: string): Promise<void> {
  const result = expectJson(
    await send(pool, { method: 'POST', path: '/introspect', form: { token, client_id: resourceServerClientId } }),
    200,
    'introspection',
  );
  if (result.active !== true) throw new Error('introspection: the token is not active');
}

/** PAR (RFC 9126) with PKCE S256 (FAPI 2.0 SP §5.3.2.2). */
export async function pushAuthorization(pool: Dispatcher, client: BenchClient): Promise<{ requestUri: string; codeVerifier: string }> {
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const par = expectJson(
    await send(pool, {
      method: 'POST',
      path: '/par',
      form: {
        client_id: client.clientId,
        response_type: 'code',
        redirect_uri: client.redirectUri,
        scope: 'openid accounts',
        code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
      },
    }),
    201,
    'PAR',
  );
  if (typeof par.request_uri !== 'string') throw new Error('PAR: no request_uri');
  return { requestUri: par.request_uri, codeVerifier };
}

/** The value of a hidden input of a rendered page. */
function hiddenField(html: string, name: string): string {
  const match = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)"`).exec(html);
  if (match === null) throw new Error(`no hidden ${name} field in the page`);
  return match[1]!;
}

/** The account checkboxes (or radio buttons) of Moat's consent page; none on the baseline's. */
function offeredAccounts(html: string): string[] {
  return [...html.matchAll(/<input type="(?:checkbox|radio)" name="accounts" id="[^"]*" value="([^"]*)"/g)].map((m) => m[1]!);
}

/** A customer's browser: a cookie jar over a shared keep-alive pool without a client certificate. */
class Browser {
  private readonly cookies = new Map<string, { value: string; path: string }>();
  private readonly pool: Dispatcher;
  private readonly origin: string;
  constructor(pool: Dispatcher, origin: string) {
    this.pool = pool;
    this.origin = origin;
  }

  private async request(path: string, form?: [string, string][]): Promise<Reply> {
    const cookie = [...this.cookies]
      .filter(([, c]) => path.startsWith(c.path))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
    const reply = await send(this.pool, {
      method: form === undefined ? 'GET' : 'POST',
      path,
      ...(form === undefined ? {} : { form }),
      ...(cookie === '' ? {} : { headers: { cookie } }),
    });
    const raw = reply.headers['set-cookie'];
    const headers = new Headers();
    for (const line of raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]) headers.append('set-cookie', line);
    for (const c of getSetCookies(headers)) {
      if (c.value === '' || c.maxAge === 0 || (c.expires !== undefined && new Date(c.expires).getTime() < Date.now())) this.cookies.delete(c.name);
      else this.cookies.set(c.name, { value: c.value, path: c.path ?? '/' });
    }
    return reply;
  }

  /** Follows redirects on the server's origin; stops at a page or at a redirect elsewhere (the TPP). */
  async follow(path: string, form?: [string, string][]): Promise<{ reply: Reply; path: string; leftTo?: URL }> {
    let reply = await this.request(path, form);
    let current = path;
    for (let hops = 0; hops < 10 && reply.status >= 300 && reply.status < 400; hops += 1) {
      const location = new URL(String(reply.headers.location), new URL(current, this.origin));
      if (location.origin !== this.origin) return { reply, path: current, leftTo: location };
      current = `${location.pathname}${location.search}`;
      reply = await this.request(current);
    }
    return { reply, path: current };
  }
}

const ALICE: [string, string][] = [
  ['username', 'alice'],
  ['password', 'alice-sandbox'],
];

/** The customer's part: authorize, sign in, approve; returns the code from the redirect to the TPP. */
export async function customerApproves(browserPool: Dispatcher, origin: string, client: BenchClient, requestUri: string): Promise<string> {
  const browser = new Browser(browserPool, origin);
  const login = await browser.follow(`/authorize?${new URLSearchParams({ client_id: client.clientId, request_uri: requestUri })}`);
  if (login.reply.status !== 200) throw new Error(`authorize: HTTP ${login.reply.status} ${login.reply.text.slice(0, 200)}`);
  let consent = await browser.follow(`${login.path}/login`, [...ALICE, ['csrf', hiddenField(login.reply.text, 'csrf')]]);
  // Moat's second factor (RTS on SCA Art. 4): the code alice's authenticator app shows; the baseline has none.
  if (consent.reply.text.includes(`${login.path}/totp"`)) {
    const secret = SANDBOX_CUSTOMERS.find((c) => c.username === 'alice')!.totpSecret;
    consent = await browser.follow(`${login.path}/totp`, [
      ['csrf', hiddenField(consent.reply.text, 'csrf')],
      ['code', totpCode(secret, new Date())],
    ]);
  }
  if (consent.reply.status !== 200) throw new Error(`login: HTTP ${consent.reply.status} ${consent.reply.text.slice(0, 200)}`);
  const decision: [string, string][] = [
    ['csrf', hiddenField(consent.reply.text, 'csrf')],
    ['decision', 'approve'],
  ];
  for (const account of offeredAccounts(consent.reply.text)) decision.push(['accounts', account]);
  const done = await browser.follow(`${consent.path}/consent`, decision);
  const code = done.leftTo?.searchParams.get('code');
  if (code === undefined || code === null) throw new Error(`consent: no code in the redirect (HTTP ${done.reply.status} ${done.reply.text.slice(0, 200)})`);
  return code;
}

/** PAR → authorize → login → consent: a code and its PKCE verifier, not yet redeemed. */
export async function authorizationCode(
  pools: { tpp: Dispatcher; browser: Dispatcher },
  origin: string,
  client: BenchClient,
): Promise<{ code: string; codeVerifier: string }> {
  const { requestUri, codeVerifier } = await pushAuthorization(pools.tpp, client);
  return { code: await customerApproves(pools.browser, origin, client, requestUri), codeVerifier };
}

import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { Agent, fetch as undiciFetch, getSetCookies } from 'undici';
import { issueSandboxTpp, writeSandboxTpp } from '../../src/sandbox/tpp-credentials.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { totpCode } from '../../src/sca/totp.ts';
import { startMoat, type Harness } from './moat-harness.ts';

/*
 * A TPP as the tests drive it: sandbox credentials from Moat's own issuance code, a fetch that
 * presents the transport certificate over real TLS, and oauth4webapi for the protocol.
 */

export interface TppCredentials {
  dir: string;
  certPem: string;
  keyPem: string;
  serverCaPem: string;
  ssa: string;
  signingJwks: { keys: (JWK & { kid: string; alg: string })[] };
  registration: Record<string, unknown>;
  summary: Record<string, unknown>;
}

export async function issueTpp(
  h: Harness,
  options: {
    name?: string;
    roles?: string[];
    redirectUris?: string[];
    eidas?: boolean;
    certificateRoles?: string[];
    ocspUrl?: string;
    crlUrl?: string;
    logoUri?: string;
    now?: Date;
  } = {},
): Promise<TppCredentials> {
  const material = await ensureSandboxMaterial(h.config.dataDir);
  const tpp = await issueSandboxTpp(material, {
    name: options.name ?? 'Test Fintech',
    issuer: h.issuer,
    ...(options.roles === undefined ? {} : { roles: options.roles }),
    ...(options.redirectUris === undefined ? {} : { redirectUris: options.redirectUris }),
    ...(options.eidas === undefined ? {} : { eidas: options.eidas }),
    ...(options.certificateRoles === undefined ? {} : { certificateRoles: options.certificateRoles }),
    ...(options.ocspUrl === undefined ? {} : { ocspUrl: options.ocspUrl }),
    ...(options.crlUrl === undefined ? {} : { crlUrl: options.crlUrl }),
    ...(options.logoUri === undefined ? {} : { logoUri: options.logoUri }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const dir = mkdtempSync(join(tmpdir(), 'moat-tpp-'));
  await writeSandboxTpp(tpp, dir);
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    dir,
    certPem: read('transport.pem'),
    keyPem: read('transport.key'),
    serverCaPem: read('server-ca.pem'),
    ssa: read('ssa.jwt').trim(),
    signingJwks: JSON.parse(read('signing.jwks.json')) as TppCredentials['signingJwks'],
    registration: JSON.parse(read('registration.json')) as Record<string, unknown>,
    summary: JSON.parse(read('tpp.json')) as Record<string, unknown>,
  };
}

export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * fetch over TLS trusting the sandbox server CA, presenting `cert` when given. Responses are
 * re-wrapped in the global Response class so oauth4webapi's checks hold inside jest's VM realm.
 */
export function tlsFetch(serverCaPem: string, cert?: { certPem: string; keyPem: string }): FetchLike & { close(): Promise<void> } {
  const agent = new Agent({
    // 50 handshakes at once on a loaded 2-core CI machine can take longer than undici's 10 s default.
    connect: { ca: serverCaPem, timeout: 60_000, ...(cert === undefined ? {} : { cert: cert.certPem, key: cert.keyPem }) },
  });
  const f = async (url: string | URL, init?: RequestInit) => {
    const res = await undiciFetch(url, { ...(init as object), dispatcher: agent, redirect: 'manual' } as Parameters<typeof undiciFetch>[1]);
    const body = await res.arrayBuffer();
    return new Response([101, 204, 205, 304].includes(res.status) ? null : body, {
      status: res.status,
      statusText: res.statusText,
      headers: new Headers([...res.headers]),
    });
  };
  return Object.assign(f, { close: () => agent.close() });
}

export async function registerTpp(
  h: Harness,
  tpp: TppCredentials,
  overrides: Record<string, unknown> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const f = tlsFetch(tpp.serverCaPem, tpp);
  try {
    const res = await f(`${h.issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...tpp.registration, ...overrides }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } finally {
    await f.close();
  }
}

/** A browser with a cookie jar: follows redirects on Moat's origin, stops at the TPP's redirect_uri. */
/** Form fields; pairs when a name repeats (accounts, permission_groups). */
export type FormFields = Record<string, string> | [string, string][];

/** The value of a hidden input in a rendered page (the CSRF token). */
export function hiddenField(html: string, name: string): string {
  const match = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)"`).exec(html);
  if (match === null) throw new Error(`no hidden ${name} field in the page`);
  return match[1]!;
}

/** The account choices a consent page offers: their input type and values. */
export function accountChoices(html: string): { type: 'checkbox' | 'radio' | 'none'; values: string[] } {
  const inputs = [...html.matchAll(/<input type="(checkbox|radio)" name="accounts" id="[^"]*" value="([^"]*)"/g)];
  if (inputs.length === 0) return { type: 'none', values: [] };
  return { type: inputs[0]![1] as 'checkbox' | 'radio', values: inputs.map((m) => m[2]!) };
}

export class Browser {
  private readonly cookies = new Map<string, { value: string; path: string }>();
  private readonly fetch: ReturnType<typeof tlsFetch>;
  private readonly origin: string;
  constructor(h: Harness, serverCaPem: string) {
    this.fetch = tlsFetch(serverCaPem);
    this.origin = h.issuer;
  }

  async request(url: string, init: { method?: string; form?: FormFields; headers?: Record<string, string> } = {}): Promise<Response> {
    const target = new URL(url, this.origin);
    const cookie = [...this.cookies.entries()]
      .filter(([, c]) => target.pathname.startsWith(c.path))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ');
    const res = await this.fetch(target, {
      method: init.method ?? 'GET',
      headers: {
        ...(cookie === '' ? {} : { cookie }),
        ...(init.form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
        ...init.headers,
      },
      ...(init.form === undefined ? {} : { body: new URLSearchParams(init.form).toString() }),
    });
    for (const c of getSetCookies(res.headers as unknown as Parameters<typeof getSetCookies>[0])) {
      if (c.value === '' || (c.expires !== undefined && new Date(c.expires).getTime() < Date.now()) || c.maxAge === 0) this.cookies.delete(c.name);
      else this.cookies.set(c.name, { value: c.value, path: c.path ?? '/' });
    }
    return res;
  }

  /** Follows redirects while they stay on Moat; returns the last response and the URL it came from. */
  async follow(
    url: string,
    init: { method?: string; form?: FormFields; headers?: Record<string, string> } = {},
  ): Promise<{ res: Response; url: string; location?: string }> {
    let res = await this.request(url, init);
    let current = url;
    for (let hops = 0; hops < 10 && res.status >= 300 && res.status < 400; hops += 1) {
      const location = new URL(res.headers.get('location')!, new URL(current, this.origin)).toString();
      if (!location.startsWith(this.origin)) return { res, url: current, location };
      current = location;
      res = await this.request(current);
    }
    return { res, url: current };
  }

  close(): Promise<void> {
    return this.fetch.close();
  }
}

export interface RegisteredTpp {
  creds: TppCredentials;
  client: oauth.Client;
  as: oauth.AuthorizationServer;
  fetch: ReturnType<typeof tlsFetch>;
  redirectUri: string;
  close(): Promise<void>;
}

export async function discover(h: Harness, f: FetchLike): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(h.issuer);
  const res = await oauth.discoveryRequest(issuer, { [oauth.customFetch]: f, algorithm: 'oidc' });
  return oauth.processDiscoveryResponse(issuer, res);
}

/** Issues credentials, registers them, and returns a ready client. */
export async function onboardTpp(
  h: Harness,
  options: {
    name?: string;
    roles?: string[];
    logoUri?: string;
    registration?: Record<string, unknown>;
    certificate?: { eidas?: boolean; ocspUrl?: string; crlUrl?: string };
  } = {},
): Promise<RegisteredTpp> {
  const creds = await issueTpp(h, {
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.roles === undefined ? {} : { roles: options.roles }),
    ...(options.logoUri === undefined ? {} : { logoUri: options.logoUri }),
    ...options.certificate,
  });
  const reg = await registerTpp(h, creds, options.registration);
  if (reg.status !== 201) throw new Error(`registration failed: ${reg.status} ${JSON.stringify(reg.body)}`);
  const f = tlsFetch(creds.serverCaPem, creds);
  const as = await discover(h, f);
  const client = reg.body as unknown as oauth.Client;
  return {
    creds,
    client,
    as,
    fetch: f,
    redirectUri: (reg.body.redirect_uris as string[])[0]!,
    close: () => f.close(),
  };
}

export interface FlowResult {
  tokens: oauth.TokenEndpointResponse;
  codeVerifier: string;
  code: string;
}

/** PAR → authorize → login → consent → token, as a TPP and a customer would. */
export async function authorizationCodeFlow(h: Harness, tpp: RegisteredTpp, options: AuthorizeOptions = {}): Promise<FlowResult> {
  const code = await authorize(h, tpp, options);
  const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), code.params, tpp.redirectUri, code.codeVerifier, {
    [oauth.customFetch]: tpp.fetch,
  });
  const tokens = await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, res);
  return { tokens, codeVerifier: code.codeVerifier, code: code.params.get('code')! };
}

export interface AuthorizeOptions extends CustomerChoices {
  scope?: string;
  extraParams?: Record<string, string>;
  /** Client authentication at PAR; mTLS by default. */
  auth?: oauth.ClientAuth;
  /** A DPoP proof on the PAR request binds the code to the key (dpop_jkt). */
  dpop?: oauth.DPoPHandle;
}

/** PAR with PKCE S256: returns the request_uri and the verifier for the token request. */
export async function pushAuthorization(tpp: RegisteredTpp, options: AuthorizeOptions = {}): Promise<{ requestUri: string; codeVerifier: string }> {
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const params = new URLSearchParams({
    response_type: 'code',
    redirect_uri: tpp.redirectUri,
    scope: options.scope ?? 'openid accounts',
    code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    ...options.extraParams,
  });
  const par = await oauth.pushedAuthorizationRequest(tpp.as, tpp.client, options.auth ?? oauth.TlsClientAuth(), params, {
    [oauth.customFetch]: tpp.fetch,
    ...(options.dpop === undefined ? {} : { DPoP: options.dpop }),
  });
  const { request_uri: requestUri } = await oauth.processPushedAuthorizationResponse(tpp.as, tpp.client, par);
  return { requestUri, codeVerifier };
}

/** Everything up to (not including) the token request. */
export async function authorize(
  h: Harness,
  tpp: RegisteredTpp,
  options: AuthorizeOptions = {},
): Promise<{ params: URLSearchParams; codeVerifier: string; location: string }> {
  const { requestUri, codeVerifier } = await pushAuthorization(tpp, options);
  const location = await customerConsents(h, tpp, requestUri, options);
  const callback = oauth.validateAuthResponse(tpp.as, tpp.client, new URL(location), oauth.skipStateCheck);
  return { params: callback, codeVerifier, location };
}

/** The customer's part in a browser: returns the redirect to the TPP's redirect_uri. */
export async function customerConsents(h: Harness, tpp: RegisteredTpp, requestUri: string, options: CustomerChoices = {}): Promise<string> {
  const browser = new Browser(h, tpp.creds.serverCaPem);
  try {
    const customer = options.customer ?? { username: 'alice', password: 'alice-sandbox' };
    const start = await browser.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
    if (start.location !== undefined) return start.location;
    const uid = new URL(start.url, h.issuer).pathname.split('/')[2]!;
    const loginPage = await start.res.text();
    const login = await signInAtInteraction(
      browser,
      uid,
      hiddenField(loginPage, 'csrf'),
      customer,
      options.totpCode === undefined ? {} : { totpCode: options.totpCode },
    );
    if (login.location !== undefined) return login.location;
    if (login.res.status !== 200) throw new Error(`sign-in failed: ${login.res.status} ${login.res.url}`);
    const consentPage = await login.res.text();
    const consentUid = new URL(login.url, h.issuer).pathname.split('/')[2]!;
    const form: [string, string][] = [
      ['csrf', hiddenField(consentPage, 'csrf')],
      ['decision', options.decision ?? 'approve'],
    ];
    const offered = accountChoices(consentPage);
    // By default: every account offered for account access, the first for a payment.
    const accounts = options.accounts ?? (offered.type === 'radio' ? offered.values.slice(0, 1) : offered.values);
    for (const id of accounts) form.push(['accounts', id]);
    if (options.permissionGroups !== undefined) {
      form.push(['permission_choice', 'explicit']);
      for (const g of options.permissionGroups) form.push(['permission_groups', g]);
    }
    form.push(...(options.extraFields ?? []));
    const consent = await browser.follow(`/interaction/${consentUid}/consent`, { method: 'POST', form });
    if (consent.location === undefined) throw new Error(`consent did not redirect to the TPP: ${consent.res.status} ${await consent.res.text()}`);
    return consent.location;
  } finally {
    await browser.close();
  }
}

/**
 * The customer signs in at an interaction the way a browser does: the password form, then — when
 * Moat asks for it (RTS on SCA Art. 4) — the one-time code an authenticator app would show,
 * computed from the customer's TOTP secret and sent with the page's hidden fields (csrf and, for a
 * payment, payment_link). Returns the last response, like Browser.follow.
 */
export async function signInAtInteraction(
  browser: Browser,
  uid: string,
  csrf: string,
  customer: { username: string; password: string; totpSecret?: string } = { username: 'alice', password: 'alice-sandbox' },
  options: { totpCode?: string; headers?: Record<string, string> } = {},
): Promise<{ res: Response; url: string; location?: string }> {
  const login = await browser.follow(`/interaction/${uid}/login`, {
    method: 'POST',
    form: { username: customer.username, password: customer.password, csrf },
    ...(options.headers === undefined ? {} : { headers: options.headers }),
  });
  if (login.location !== undefined || login.res.status !== 200) return login;
  const page = await login.res.text();
  if (!page.includes(`/interaction/${uid}/totp"`)) return { ...login, res: new Response(page, { status: login.res.status, headers: login.res.headers }) };
  const secret = customer.totpSecret ?? SANDBOX_CUSTOMERS.find((c) => c.username === customer.username)?.totpSecret;
  if (secret === undefined) throw new Error(`no TOTP secret known for ${customer.username}`);
  const fields: Record<string, string> = { csrf: hiddenField(page, 'csrf'), code: options.totpCode ?? totpCode(secret, new Date()) };
  if (page.includes('name="payment_link"')) fields.payment_link = hiddenField(page, 'payment_link');
  return browser.follow(`/interaction/${uid}/totp`, { method: 'POST', form: fields });
}

/**
 * Password, then code, without following the last redirect: the response that finishes the sign-in
 * (a 303 back to oidc-provider's resume), for tests that follow it elsewhere (another instance).
 */
export async function signInWithoutFollowing(browser: Browser, uid: string, csrf: string, username = 'alice'): Promise<Response> {
  const customer = SANDBOX_CUSTOMERS.find((c) => c.username === username)!;
  const login = await browser.request(`/interaction/${uid}/login`, { method: 'POST', form: { username, password: customer.password, csrf } });
  if (login.status !== 303) return login;
  const page = await (await browser.request(`/interaction/${uid}`)).text();
  return browser.request(`/interaction/${uid}/totp`, {
    method: 'POST',
    form: { csrf: hiddenField(page, 'csrf'), code: totpCode(customer.totpSecret, new Date()) },
  });
}

/** Signs a sandbox customer in to the consent dashboard (/account) with password and code: a strong session. */
export async function signInToDashboard(browser: Browser, username = 'alice', password = `${username}-sandbox`): Promise<void> {
  const page = await browser.request('/account/login');
  const res = await browser.request('/account/login', { method: 'POST', form: { username, password, csrf: hiddenField(await page.text(), 'csrf') } });
  if (res.status !== 302 || res.headers.get('location') !== '/account/login/code') throw new Error(`sign-in failed: ${res.status}`);
  const codePage = await (await browser.request('/account/login/code')).text();
  const secret = SANDBOX_CUSTOMERS.find((c) => c.username === username)!.totpSecret;
  const done = await browser.request('/account/login/code', {
    method: 'POST',
    form: { csrf: hiddenField(codePage, 'csrf'), code: totpCode(secret, new Date()) },
  });
  if (done.status !== 302 || done.headers.get('location') !== '/account/consents') throw new Error(`code refused: ${done.status}`);
}

export interface CustomerChoices {
  /** A sandbox customer by default; totpSecret defaults to the sandbox customer's published one. */
  customer?: { username: string; password: string; totpSecret?: string };
  /** The one-time code to type instead of the right one (bad-input tests). */
  totpCode?: string;
  decision?: 'approve' | 'deny';
  /** Account ids to send; by default all offered (account access) or the first (payment); [] sends none. */
  accounts?: string[];
  /** Permission groups to keep (narrowing); all by default. */
  permissionGroups?: string[];
  /** Further consent form fields, as a browser would send the page's hidden inputs. */
  extraFields?: [string, string][];
}

/**
 * One Moat with one registered TPP for a test file: started before its tests, closed after them.
 * `ready` receives both once they are up.
 */
export function useMoatWithTpp(ready: (started: { h: Harness; tpp: RegisteredTpp }) => void, options?: Parameters<typeof startMoat>[0]): void {
  let started: { h: Harness; tpp?: RegisteredTpp } | undefined;
  beforeAll(async () => {
    started = { h: await startMoat(options) };
    started.tpp = await onboardTpp(started.h);
    ready({ h: started.h, tpp: started.tpp });
  });
  afterAll(async () => {
    await started?.tpp?.close();
    await started?.h.close();
  });
}

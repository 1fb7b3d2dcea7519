import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import Provider, { type Adapter, type AdapterPayload, type Configuration } from 'oidc-provider';
import { createTestCa, issueLeaf, type TestCa, type TestCertificate } from './pki.ts';
import { startMoat, type Harness } from './moat-harness.ts';
import { freePort } from './ports.ts';
import { accountChoices, Browser, hiddenField, onboardTpp, type RegisteredTpp } from './tpp-client.ts';

/*
 * "The bank's IdP" for the federation tests: a second, bare oidc-provider on a loopback port with its
 * own CA, keys and users, its own login page, and Moat registered as a client (private_key_jwt or
 * tls_client_auth). It runs on 127.0.0.1 while Moat runs on localhost, so the two never share
 * cookies. `misbehave` makes it fail the ways a real IdP can: hang, answer errors, name another
 * issuer, sign an ID token for another nonce or with a key it does not publish.
 */

export interface BankUser {
  username: string;
  password: string;
  sub: string;
  customerNumber: string;
  name: string;
  acr: string;
  amr: string[];
}

/** The bank's customers: alice signs in with two factors (SCA), bob with a password alone unless he also gives a code (`second_factor`). */
export const BANK_USERS: BankUser[] = [
  {
    username: 'alice',
    password: 'alice-bank',
    sub: 'bank-0001',
    customerNumber: 'cust-alice',
    name: 'Alice B. Example',
    acr: 'urn:bank:loa:high',
    amr: ['pwd', 'otp', 'mfa'],
  },
  { username: 'bob', password: 'bob-bank', sub: 'bank-0002', customerNumber: 'cust-bob', name: 'Bob B. Example', acr: 'urn:bank:loa:low', amr: ['pwd'] },
];
export const SCA_ACR_AT_BANK = 'urn:bank:loa:high';

export interface Misbehaviour {
  /** Requests to this path (e.g. /token, /request, /.well-known/openid-configuration) never get an answer. */
  hangOn?: string;
  /** The token endpoint answers 500 with an OAuth error body. */
  tokenServerError?: boolean;
  /** The authorization response names this issuer instead (an RFC 9207 mix-up). */
  issuerInResponse?: string;
  /** The ID token, signed with the IdP's key, carries this nonce instead of the one sent. */
  nonceInIdToken?: string;
  /** The ID token is signed with a key the IdP does not publish (same kid). */
  foreignSigningKey?: boolean;
  /** The ID token says the customer signed in this many seconds ago (an IdP answering from its own earlier session). */
  authTimeAgoSeconds?: number;
}

export interface BankIdp {
  issuer: string;
  caPem: string;
  /** Files Moat's configuration points at: the IdP's CA, Moat's client key or certificate. */
  files: { caFile: string; jwkFile?: string; certFile?: string; keyFile?: string };
  misbehave: Misbehaviour;
  /** Registers Moat's redirect URI (known only once Moat listens). */
  registerMoat(moatIssuer: string): void;
  /** Moat's `customers` configuration for this IdP. */
  moatCustomersConfig(extra?: Record<string, unknown>): Record<string, unknown>;
  /** Every request the IdP received, as `METHOD /path`. */
  requests: string[];
  /** The query of every front-channel authorization request (GET /auth). */
  authorizationRequests: URLSearchParams[];
  /** Takes the IdP down (connections refused from now on). */
  stop(): Promise<void>;
  /** Brings it back on the same port. */
  resume(): Promise<void>;
  close(): Promise<void>;
}

export async function startBankIdp(options: { clientAuth?: 'private_key_jwt' | 'tls_client_auth'; par?: boolean } = {}): Promise<BankIdp> {
  const clientAuth = options.clientAuth ?? 'private_key_jwt';
  const dir = mkdtempSync(join(tmpdir(), 'moat-bank-idp-'));
  const ca = await createTestCa([{ CN: ['Bank IdP Test CA'] }]);
  const serverCert = await issueLeaf(ca, { subject: [{ CN: ['127.0.0.1'] }], eku: ['serverAuth'], san: { ip: ['127.0.0.1'], dns: ['localhost'] } });
  const files: BankIdp['files'] = { caFile: join(dir, 'bank-idp-ca.pem') };
  writeFileSync(files.caFile, ca.certPem);

  // Moat's credentials at the bank: a private JWK, or a client certificate from the bank's own CA.
  let clientMetadata: Record<string, unknown>;
  let moatClientCert: TestCertificate | undefined;
  if (clientAuth === 'private_key_jwt') {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = 'moat-rp-1';
    files.jwkFile = join(dir, 'moat-rp.jwk.json');
    writeFileSync(files.jwkFile, JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg: 'ES256' }));
    clientMetadata = {
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] },
    };
  } else {
    moatClientCert = await issueLeaf(ca, { subject: [{ CN: ['moat-rp'] }, { O: ['Moat Relying Party'] }], eku: ['clientAuth'] });
    files.certFile = join(dir, 'moat-rp.pem');
    files.keyFile = join(dir, 'moat-rp.key');
    writeFileSync(files.certFile, moatClientCert.certPem);
    writeFileSync(files.keyFile, moatClientCert.keyPem);
    clientMetadata = { token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=moat-rp,O=Moat Relying Party' };
  }

  const signing = await generateKeyPair('ES256', { extractable: true });
  const signingJwk: JWK = { ...(await exportJWK(signing.privateKey)), kid: 'bank-idp-1', alg: 'ES256', use: 'sig' };
  const port = await freePort();
  const issuer = `https://127.0.0.1:${port}`;
  let redirectUris: string[] = [];
  const misbehave: Misbehaviour = {};

  const provider = new Provider(issuer, {
    adapter: memoryAdapter(() =>
      redirectUris.length === 0
        ? undefined
        : {
            client_id: 'moat',
            redirect_uris: redirectUris,
            response_types: ['code'],
            grant_types: ['authorization_code'],
            id_token_signed_response_alg: 'ES256',
            ...clientMetadata,
          },
    ),
    jwks: { keys: [signingJwk] } as Configuration['jwks'],
    cookies: { keys: ['bank-idp-cookie-key'], long: { signed: true, secure: true }, short: { signed: true, secure: true } },
    claims: { openid: ['sub', 'customer_number'], profile: ['name'], acr: null, amr: null, auth_time: null, sid: null },
    acrValues: ['urn:bank:loa:low', SCA_ACR_AT_BANK],
    clientAuthMethods: ['private_key_jwt', 'tls_client_auth'],
    findAccount: (_ctx, sub) => {
      const user = BANK_USERS.find((u) => u.sub === sub);
      return user === undefined ? undefined : { accountId: sub, claims: () => ({ sub, name: user.name, customer_number: user.customerNumber }) };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      pushedAuthorizationRequests: { enabled: options.par ?? true },
      mTLS: {
        enabled: true,
        tlsClientAuth: true,
        getCertificate: (ctx) => (ctx.socket as TLSSocket).getPeerX509Certificate?.(),
        certificateAuthorized: (ctx) => (ctx.socket as TLSSocket).authorized,
        certificateSubjectMatches: (ctx, property, expected) =>
          property === 'tls_client_auth_subject_dn' && (ctx.socket as TLSSocket).getPeerX509Certificate?.()?.subject.split('\n').join(',') === expected,
      },
    },
  });

  // The bank's own login page: username and password, or cancel; consent to Moat is implied.
  const requests: string[] = [];
  const authorizationRequests: URLSearchParams[] = [];
  provider.use(async (ctx, next) => {
    requests.push(`${ctx.method} ${ctx.path}`);
    if (ctx.method === 'GET' && ctx.path === '/auth') authorizationRequests.push(new URLSearchParams(ctx.querystring));
    const hang = misbehave.hangOn;
    if (hang !== undefined && ctx.path === hang) {
      await new Promise<void>((release) => {
        releaseHung.push(release);
      });
      ctx.status = 503;
      return;
    }
    if (misbehave.tokenServerError === true && ctx.path === '/token') {
      ctx.status = 500;
      ctx.body = { error: 'server_error', error_description: 'the bank IdP is having trouble' };
      return;
    }
    const match = /^\/interaction\/([^/]+)(\/login|\/cancel)?$/.exec(ctx.path);
    if (match === null) {
      await next();
      await tamperWithAnswer(ctx);
      return;
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (match[2] === undefined && ctx.method === 'GET') {
      if (details.prompt.name === 'consent') {
        const grant = new provider.Grant({ accountId: details.session!.accountId, clientId: String(details.params.client_id) });
        grant.addOIDCScope(String(details.params.scope));
        const missingClaims = (details.prompt.details as { missingOIDCClaims?: string[] }).missingOIDCClaims;
        if (missingClaims !== undefined) grant.addOIDCClaims(missingClaims);
        await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
        ctx.respond = false;
        return;
      }
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>Bank sign-in</title><h1>Sign in to your bank</h1>
<form method="post" action="/interaction/${details.uid}/login"><label for="u">Username</label><input id="u" name="username">
<label for="p">Password</label><input id="p" name="password" type="password">
<label><input type="checkbox" name="second_factor" value="otp"> Also confirm with my code</label><button type="submit">Sign in</button></form>
<form method="post" action="/interaction/${details.uid}/cancel"><button type="submit">Cancel</button></form>`;
      return;
    }
    const form = new URLSearchParams(await readBody(ctx.req));
    if (match[2] === '/cancel') {
      await provider.interactionFinished(
        ctx.req,
        ctx.res,
        { error: 'access_denied', error_description: 'the customer cancelled' },
        { mergeWithLastSubmission: false },
      );
      ctx.respond = false;
      return;
    }
    const user = BANK_USERS.find((u) => u.username === form.get('username') && u.password === form.get('password'));
    if (user === undefined) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = '<!doctype html><title>Bank sign-in</title><p>Wrong username or password</p>';
      return;
    }
    // A customer who also confirms with their second factor at the bank (`second_factor=otp`) signs in with SCA.
    const strong = form.get('second_factor') === 'otp';
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      {
        login: strong ? { accountId: user.sub, acr: SCA_ACR_AT_BANK, amr: ['pwd', 'otp', 'mfa'] } : { accountId: user.sub, acr: user.acr, amr: user.amr },
      },
      { mergeWithLastSubmission: false },
    );
    ctx.respond = false;
  });

  async function tamperWithAnswer(ctx: Parameters<Parameters<Provider['use']>[0]>[0]): Promise<void> {
    const location = String(ctx.response.get('location') ?? '');
    if (misbehave.issuerInResponse !== undefined && location.includes('/federation/callback')) {
      const url = new URL(location);
      url.searchParams.set('iss', misbehave.issuerInResponse);
      ctx.set('location', url.toString());
    }
    if (
      ctx.path === '/token' &&
      ctx.status === 200 &&
      (misbehave.nonceInIdToken !== undefined || misbehave.foreignSigningKey === true || misbehave.authTimeAgoSeconds !== undefined)
    ) {
      const body = ctx.body as Record<string, unknown>;
      const claims = decodeJwt(String(body.id_token));
      if (misbehave.nonceInIdToken !== undefined) claims.nonce = misbehave.nonceInIdToken;
      if (misbehave.authTimeAgoSeconds !== undefined) claims.auth_time = Math.floor(Date.now() / 1000) - misbehave.authTimeAgoSeconds;
      const key = misbehave.foreignSigningKey === true ? (await generateKeyPair('ES256')).privateKey : await importJWK(signingJwk, 'ES256');
      body.id_token = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: signingJwk.kid! }).sign(key);
      ctx.body = body;
    }
  }

  const releaseHung: (() => void)[] = [];
  provider.on('server_error', (_ctx: unknown, err: Error) => {
    process.stderr.write(`bank IdP server_error: ${err.stack}\n`);
  });
  const server: Server = createServer(
    {
      cert: serverCert.certPem,
      key: serverCert.keyPem,
      // mTLS client authentication (RFC 8705 §2.1): the certificate is asked for, and judged per client.
      requestCert: true,
      rejectUnauthorized: false,
      ca: ca.certPem,
    },
    provider.callback(),
  );
  await new Promise<void>((ready) => server.listen(port, '127.0.0.1', ready));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const release of releaseHung.splice(0)) release();
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  };

  return {
    issuer,
    caPem: ca.certPem,
    files,
    misbehave,
    registerMoat(moatIssuer) {
      redirectUris = [new URL('/federation/callback', moatIssuer).toString()];
    },
    moatCustomersConfig(extra = {}) {
      return {
        source: 'oidc',
        oidc: {
          issuer,
          clientId: 'moat',
          caFile: files.caFile,
          clientAuth:
            clientAuth === 'private_key_jwt'
              ? { method: 'private_key_jwt', jwkFile: files.jwkFile }
              : { method: 'tls_client_auth', certFile: files.certFile, keyFile: files.keyFile },
          customerIdClaim: 'customer_number',
          sca: { acrValues: [SCA_ACR_AT_BANK] },
          ...extra,
        },
      };
    },
    requests,
    authorizationRequests,
    stop,
    async resume() {
      if (!stopped) return;
      await new Promise<void>((ready) => server.listen(port, '127.0.0.1', ready));
      stopped = false;
    },
    close: stop,
  };
}

export type { TestCa };

function readBody(req: NodeJS.ReadableStream): Promise<string> {
  return new Promise((done, fail) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => done(body));
    req.on('error', fail);
  });
}

/** oidc-provider's storage for the test IdP: a Map, and the one client, Moat, once it is registered. */
function memoryAdapter(moatClient: () => AdapterPayload | undefined): NonNullable<Configuration['adapter']> {
  const store = new Map<string, AdapterPayload>();
  return class implements Adapter {
    private readonly model: string;
    constructor(model: string) {
      this.model = model;
    }
    key(id: string) {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: AdapterPayload) {
      store.set(this.key(id), payload);
    }
    async find(id: string) {
      return this.model === 'Client' ? (id === 'moat' ? moatClient() : undefined) : store.get(this.key(id));
    }
    async findByUserCode() {
      return undefined;
    }
    async findByUid(uid: string) {
      return [...store.entries()].find(([k, v]) => k.startsWith(`${this.model}:`) && v.uid === uid)?.[1];
    }
    async consume(id: string) {
      const p = store.get(this.key(id));
      if (p !== undefined) p.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string) {
      for (const [k, v] of store) if (v.grantId === grantId) store.delete(k);
    }
  };
}

/** What a federated sign-in came to, step by step, for tests to look at. */
export interface FederatedJourney {
  /** The redirect to the TPP's redirect_uri when the interaction ended. */
  tppLocation?: string;
  /** The last Moat page when it did not (a problem page, the consent page). */
  page?: { status: number; url: string; html: string };
  /** The callback URL the IdP sent the browser to (to replay it). */
  callbackUrl?: string;
  moat: Browser;
}

/**
 * The customer's side, headless, through the form contract: Moat sends the browser to the bank's
 * IdP, the customer signs in there, the IdP sends them back, and the consent form is posted.
 * Two browsers' cookie jars, one per origin, as one real browser keeps them.
 */
export async function federatedCustomer(
  h: Harness,
  tpp: RegisteredTpp,
  idp: BankIdp,
  requestUri: string,
  options: {
    user?: { username: string; password: string; second_factor?: string };
    cancelAtBank?: boolean;
    consent?: boolean;
    keepBrowser?: boolean;
    /** Moat's own one-time code, when Moat asks for one after the bank's sign-in (a payment, or a step-up). */
    code?: () => string;
    /** Carry on in this browser from this Moat page (a retry link) instead of starting at /authorize. */
    resume?: { browser: Browser; path: string };
  } = {},
): Promise<FederatedJourney> {
  const moat = options.resume?.browser ?? new Browser(h, tpp.creds.serverCaPem);
  const bank = new Browser({ issuer: idp.issuer } as Harness, idp.caPem);
  try {
    const start = await moat.follow(options.resume?.path ?? `/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
    const page = async (r: { res: Response; url: string }) => ({ status: r.res.status, url: r.url, html: await r.res.text() });
    if (start.location === undefined) return { page: await page(start), moat };
    if (!start.location.startsWith(idp.issuer)) return { tppLocation: start.location, moat };
    const loginPage = await bank.follow(start.location);
    if (loginPage.res.status !== 200) throw new Error(`the bank IdP login page answered ${loginPage.res.status}`);
    const uid = new URL(loginPage.url, idp.issuer).pathname.split('/')[2]!;
    const user = options.user ?? { username: 'alice', password: 'alice-bank' };
    const signedIn =
      options.cancelAtBank === true
        ? await bank.follow(`/interaction/${uid}/cancel`, { method: 'POST', form: {} })
        : await bank.follow(`/interaction/${uid}/login`, { method: 'POST', form: user });
    if (signedIn.location === undefined) throw new Error(`the bank IdP did not send the customer back: ${signedIn.res.status}`);
    const callbackUrl = signedIn.location;
    let back = await moat.follow(callbackUrl);
    if (back.location !== undefined) return { tppLocation: back.location, callbackUrl, moat };
    let landed = await page(back);
    const codeForm = /action="(\/interaction\/[^/"]+\/totp)"/.exec(landed.html);
    if (codeForm !== null && options.code !== undefined) {
      const form: Record<string, string> = { csrf: hiddenField(landed.html, 'csrf'), code: options.code() };
      if (landed.html.includes('name="payment_link"')) form.payment_link = hiddenField(landed.html, 'payment_link');
      back = await moat.follow(codeForm[1]!, { method: 'POST', form });
      if (back.location !== undefined) return { tppLocation: back.location, callbackUrl, moat };
      landed = await page(back);
    }
    if (options.consent === false || !/\/interaction\/[^/]+$/.test(new URL(back.url, h.issuer).pathname) || landed.status !== 200)
      return { page: landed, callbackUrl, moat };
    const consentUid = new URL(back.url, h.issuer).pathname.split('/')[2]!;
    const form: [string, string][] = [
      ['csrf', hiddenField(landed.html, 'csrf')],
      ['decision', 'approve'],
    ];
    const offered = accountChoices(landed.html);
    for (const id of offered.type === 'radio' ? offered.values.slice(0, 1) : offered.values) form.push(['accounts', id]);
    const consent = await moat.follow(`/interaction/${consentUid}/consent`, { method: 'POST', form });
    if (consent.location === undefined) return { page: await page(consent), callbackUrl, moat };
    return { tppLocation: consent.location, callbackUrl, moat, page: landed };
  } finally {
    await bank.close();
    if (options.keepBrowser !== true) await moat.close();
  }
}

/**
 * A bank IdP and a Moat that signs its customers in there, with one registered TPP, for a test
 * file: started before its tests, closed after them.
 */
export function useMoatWithBankIdp(
  ready: (started: { idp: BankIdp; h: Harness; tpp: RegisteredTpp }) => void,
  options: { idp?: Parameters<typeof startBankIdp>[0]; oidc?: Record<string, unknown>; when?: () => boolean; now?: () => Date } = {},
): void {
  let started: { idp?: BankIdp; h?: Harness; tpp?: RegisteredTpp } = {};
  beforeAll(async () => {
    if (options.when?.() === false) return;
    const idp = await startBankIdp(options.idp);
    started = { idp };
    const h = await startMoat({ config: { customers: idp.moatCustomersConfig(options.oidc) }, ...(options.now === undefined ? {} : { now: options.now }) });
    started.h = h;
    idp.registerMoat(h.issuer);
    started.tpp = await onboardTpp(h);
    ready({ idp, h, tpp: started.tpp });
  });
  afterAll(async () => {
    await started.tpp?.close();
    await started.h?.close();
    await started.idp?.close();
  });
}

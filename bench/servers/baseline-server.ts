import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import type { CertificateGate } from '../../src/certificates/certificate-gate.ts';
import { validateConfig } from '../../src/config/load.ts';
import type { ConsentService } from '../../src/consents/consent-service.ts';
import type { CustomerDirectory } from '../../src/customers/customer-directory.ts';
import { hashPassword, verifyPassword } from '../../src/customers/password-hash.ts';
import { readForm } from '../../src/http/read-body.ts';
import { loadOrCreateSecrets } from '../../src/keys/secrets.ts';
import { loadOrCreateSigningKeys, providerJwks } from '../../src/keys/signing-keys.ts';
import { createProvider } from '../../src/provider/create-provider.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { loadTrustAnchors } from '../../src/pki/certificate-chain.ts';
import { createClientCertificateResolver } from '../../src/tls/client-certificate.ts';
import { createHttpsServer } from '../../src/tls/https-server.ts';
import type { BenchServer } from './bench-server.ts';
import { createBaselineAdapter, storeClient } from './baseline-storage.ts';
import { createCodeMinter } from './code-minting.ts';

/*
 * The baseline: bare oidc-provider with Moat's FAPI configuration (createProvider: the same
 * features, algorithms, TTLs, PKCE, PAR, mTLS client authentication and certificate-bound tokens,
 * the same RFC 8705 chain policy, the same signing keys), on oidc-provider's in-memory adapter,
 * served by a plain node https server with Moat's TLS options. None of Moat's Koa app: no request
 * log, metrics, tracing, rate limits, certificate registry, consent records, audit log or SQL.
 *
 * oidc-provider needs someone to log the customer in and record consent; the few lines below are
 * the least that does it: the same Argon2id password check as Moat (it is the flow's dominant cost,
 * and leaving it out would make the comparison meaningless), and a grant of what the prompt asks.
 */

const CUSTOMER = { id: 'cust-alice', username: 'alice', password: 'alice-sandbox', name: 'Alice Example' };

/** The one customer, with a password hash made the way Moat makes its customers'. */
async function createCustomers(): Promise<CustomerDirectory & { check(username: string, password: string): Promise<boolean> }> {
  const hash = await hashPassword(CUSTOMER.password);
  const customer = { id: CUSTOMER.id, name: CUSTOMER.name };
  const check = async (username: string, password: string) => username === CUSTOMER.username && (await verifyPassword(password, hash));
  return {
    check,
    authenticate: async (username, password) => ((await check(username, password)) ? customer : undefined),
    findById: async (id) => (id === customer.id ? customer : undefined),
  };
}

/** No consent records in the baseline: only the lookup oidc-provider's hooks make is answered. */
function noConsents(): ConsentService {
  const absent = () => Promise.reject(new Error('the baseline keeps no consents'));
  return {
    findByGrantId: async () => undefined,
    recordUse: async () => undefined,
    lodgeIntent: absent,
    getForClient: absent,
    getForCustomer: absent,
    listForCustomer: absent,
    listForClient: absent,
    events: absent,
    authorise: absent,
    reject: absent,
    revoke: absent,
    withdraw: absent,
    consume: absent,
    revokeAllForClient: absent,
    expireDue: absent,
  };
}

/** No certificate registry in the baseline: no certificate is ever revoked or retired. */
const noRegistryGate: CertificateGate = {
  middleware: (_ctx, next) => next(),
  refusal: () => undefined,
  bindingAlive: async () => true,
};

const PAGE_HEADERS = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' };

/** Pages with the same form contract as Moat's (a hidden csrf field), so one client drives both. */
function page(res: ServerResponse, status: number, action: string, fields: string): void {
  res.writeHead(status, PAGE_HEADERS);
  res.end(`<!doctype html><form method="post" action="${action}"><input type="hidden" name="csrf" value="baseline">${fields}<button>Continue</button></form>`);
}

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

/** What the prompt says is missing, granted (the same grant Moat's consent step saves). */
async function saveGrant(provider: Provider, details: InteractionDetails): Promise<string> {
  const grant = new provider.Grant({ accountId: details.session!.accountId, clientId: String(details.params.client_id) });
  const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
  if (missing.missingOIDCScope !== undefined) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims !== undefined) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
  return grant.save();
}

const INTERACTION_PATH = /^\/interaction\/([^/?]+)(?:\/(login|consent))?\/?(?:\?.*)?$/;

function createInteractionHandler(provider: Provider, customers: Awaited<ReturnType<typeof createCustomers>>) {
  return async (req: IncomingMessage, res: ServerResponse, step: string | undefined): Promise<void> => {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET' && step === undefined) {
      if (details.prompt.name === 'login')
        page(res, 200, `/interaction/${details.uid}/login`, '<input name="username"><input name="password" type="password">');
      else page(res, 200, `/interaction/${details.uid}/consent`, '<input type="hidden" name="decision" value="approve">');
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const form = await readForm(req);
    let result: InteractionResults;
    if (step === 'login' && details.prompt.name === 'login') {
      if (!(await customers.check(form.get('username') ?? '', form.get('password') ?? ''))) {
        page(res, 401, `/interaction/${details.uid}/login`, '<p>The username or password is incorrect.</p>');
        return;
      }
      result = { login: { accountId: CUSTOMER.id } };
    } else if (step === 'consent' && details.prompt.name === 'consent' && form.get('decision') === 'approve') {
      result = { consent: { grantId: await saveGrant(provider, details) } };
    } else {
      res.writeHead(400).end();
      return;
    }
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: step === 'consent' });
  };
}

export async function startBaseline(rawConfig: Record<string, unknown>, baseDir: string): Promise<BenchServer> {
  const config = validateConfig(rawConfig, 'benchmark baseline', baseDir);
  const sandbox = await ensureSandboxMaterial(config.dataDir);
  const anchors = loadTrustAnchors([...config.trustAnchors, sandbox.tppCaCertFile]);
  const { keys } = await loadOrCreateSigningKeys(config.keys.dir, config.keys.algorithms);
  const secrets = loadOrCreateSecrets(config.keys.dir);
  const customers = await createCustomers();
  const adapter = createBaselineAdapter(10);

  const provider = createProvider({
    config,
    adapter,
    jwks: providerJwks(keys),
    cookieKeys: secrets.cookieKeys,
    dpopNonceSecret: secrets.dpopNonceSecret,
    customers,
    consents: noConsents(),
    // The same RFC 8705 chain policy as Moat (FAPI requires the certificate to be validated).
    clientCertificate: createClientCertificateResolver({ trustedProxies: [], format: config.trustedProxies.format, anchors }),
    certificateGate: noRegistryGate,
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<!doctype html><p>${out.error}</p>`;
    },
  });

  const providerCallback = provider.callback();
  const interaction = createInteractionHandler(provider, customers);
  const server = createHttpsServer({
    cert: readFileSync(config.tls.certFile ?? sandbox.serverCertFile),
    key: readFileSync(config.tls.keyFile ?? sandbox.serverKeyFile),
    ca: anchors.pem,
    handler: (req, res) => {
      const match = INTERACTION_PATH.exec(req.url ?? '');
      if (match === null) {
        providerCallback(req, res);
        return;
      }
      interaction(req, res, match[2]).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`baseline interaction failed: ${(err as Error).message}`);
      });
    },
  });
  await new Promise<void>((listening, failed) => {
    server.once('error', failed);
    server.listen(config.listen.port, config.listen.host, () => listening());
  });

  return {
    ports: { public: (server.address() as AddressInfo).port },
    listeners: [server],
    registerClient: (metadata) => storeClient(adapter, metadata),
    mintCodes: createCodeMinter(provider),
    close: () =>
      new Promise<void>((closed) => {
        server.close(() => closed());
        server.closeAllConnections();
      }),
  };
}

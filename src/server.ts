import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errors } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { createApp } from './app.ts';
import type { MoatConfig } from './config/schema.ts';
import { createSqlCustomerDirectory, seedSandboxCustomers } from './customers/sql-customer-directory.ts';
import { createViews } from './interactions/views.ts';
import { loadOrCreateSecrets } from './keys/secrets.ts';
import { loadOrCreateSigningKeys, providerJwks } from './keys/signing-keys.ts';
import type { Logger } from './observability/logger.ts';
import { attachProviderEventLogging } from './observability/provider-events.ts';
import { createProvider } from './provider/create-provider.ts';
import { createRegistrationMiddleware } from './registration/registration-middleware.ts';
import { createDirectoryKeys } from './registration/directories.ts';
import { createSandboxApiRouter, sandboxApiIdentifier } from './sandbox/sandbox-api.ts';
import { ensureSandboxMaterial } from './sandbox/sandbox-material.ts';
import { createAdapterFactory } from './storage/adapter.ts';
import { createStorage } from './storage/create-storage.ts';
import { pendingMigrations } from './storage/sql/migrate.ts';
import { loadTrustAnchors } from './tls/certificate-chain.ts';
import { createClientCertificateResolver } from './tls/client-certificate.ts';
import { createHttpServer, createHttpsServer } from './tls/https-server.ts';
import { createRenderError } from './interactions/render-error.ts';
import type { DirectoryConfig } from './config/schema.ts';

/** In sandbox mode the built-in sandbox API is a resource server, so a first token has something to call. */
function withSandboxApi(config: MoatConfig): MoatConfig {
  const identifier = sandboxApiIdentifier(config.issuer);
  if (config.resourceServers.some((rs) => rs.identifier === identifier)) return config;
  return {
    ...config,
    resourceServers: [...config.resourceServers, { identifier, scopes: Object.keys(config.scopes), accessTokenFormat: 'opaque' }],
  };
}

export interface MoatServer {
  server: Server;
  provider: Provider;
  config: MoatConfig;
  storage: Awaited<ReturnType<typeof createStorage>>;
  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(): Promise<number>;
  /** Stops accepting connections, drains in-flight requests and closes storage. */
  close(): Promise<void>;
}

/**
 * Builds every part of a Moat process from a validated configuration: storage, keys, sandbox
 * material, trust, the provider, the Koa app and the TLS server. Nothing here reads process.env.
 */
export async function createMoatServer(configured: MoatConfig, logger: Logger): Promise<MoatServer> {
  const sandbox = configured.mode === 'sandbox' ? await ensureSandboxMaterial(configured.dataDir) : undefined;
  const config = sandbox === undefined ? configured : withSandboxApi(configured);

  const trustAnchorFiles = [...config.trustAnchors, ...(sandbox === undefined ? [] : [sandbox.tppCaCertFile])];
  const anchors = loadTrustAnchors(trustAnchorFiles);
  const directories: DirectoryConfig[] = [...config.directories];
  if (sandbox !== undefined && !directories.some((d) => d.issuer === sandbox.directory.issuer)) {
    directories.push({
      name: 'Moat sandbox directory', issuer: sandbox.directory.issuer, jwksFile: sandbox.directory.jwksFile, orgIdAttribute: sandbox.directory.orgIdAttribute,
    });
  }

  const storage = await createStorage(config, logger);
  try {
    if (sandbox !== undefined) await seedSandboxCustomers(storage.sql);
    const { keys, created } = await loadOrCreateSigningKeys(config.keys.dir, config.keys.algorithms);
    for (const key of created) logger.info({ event: 'keys.generated', kid: key.kid, alg: key.alg }, 'signing key generated');
    const secrets = loadOrCreateSecrets(config.keys.dir);

    const clientCertificate = createClientCertificateResolver({
      trustedProxies: config.trustedProxies.addresses,
      format: config.trustedProxies.format,
      anchors,
      onIgnoredHeader: (info) => logger.warn({ event: 'forwarded_certificate.ignored', outcome: 'mtls_untrusted_forwarder', ...info }, 'forwarded client certificate ignored'),
    });
    const customers = createSqlCustomerDirectory(storage.sql);
    const views = createViews({ bankName: 'Moat Bank', sandbox: sandbox !== undefined });
    const provider = createProvider({
      config,
      adapter: createAdapterFactory({ durable: storage.durable, shortLived: storage.shortLived }, errors),
      jwks: providerJwks(keys),
      cookieKeys: secrets.cookieKeys,
      dpopNonceSecret: secrets.dpopNonceSecret,
      customers,
      clientCertificate,
      renderError: createRenderError(views),
    });
    attachProviderEventLogging(provider, logger);

    const registration = createRegistrationMiddleware({
      config, directories: createDirectoryKeys(directories), clientCertificate, sql: storage.sql, logger,
    });
    const app = createApp({
      config, provider, customers, views, logger, cookieKeys: secrets.cookieKeys,
      routers: sandbox === undefined ? [] : [createSandboxApiRouter({ provider, issuer: config.issuer, clientCertificate })],
      beforeProvider: [registration],
      ready: async () => {
        await Promise.all([storage.durable.ping(), storage.shortLived.ping()]);
        const pending = await pendingMigrations(storage.sql);
        if (pending.length > 0) throw new Error(`migrations pending: ${pending.join(', ')}`);
      },
    });

    const handler = app.callback();
    const server = config.tls.terminate
      ? createHttpsServer({
        cert: readFileSync(config.tls.certFile ?? sandbox!.serverCertFile),
        key: readFileSync(config.tls.keyFile ?? sandbox!.serverKeyFile),
        ca: anchors.pem,
        handler,
      })
      : createHttpServer(handler);

    return {
      server, provider, config, storage,
      listen: () => new Promise((resolvePort, reject) => {
        server.once('error', reject);
        server.listen(config.listen.port, config.listen.host, () => {
          server.off('error', reject);
          resolvePort((server.address() as AddressInfo).port);
        });
      }),
      close: async () => {
        await new Promise<void>((done) => {
          server.close(() => done());
          server.closeIdleConnections();
        });
        await storage.close();
      },
    };
  } catch (err) {
    await storage.close();
    throw err;
  }
}

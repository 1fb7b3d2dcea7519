import { readFileSync } from 'node:fs';
import { cibaEnabled } from './config/ciba-enabled.ts';
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { Server as TlsServer } from 'node:tls';
import { errors } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { createApp } from './app.ts';
import { defaultText } from './config/localised-text.ts';
import type { MoatConfig } from './config/schema.ts';
import { cachedCustomerDirectory, copyCustomer } from './customers/cached-customer-directory.ts';
import type { Customer, CustomerDirectory } from './customers/customer-directory.ts';
import { SANDBOX_CUSTOMERS, SandboxCustomersInProduction } from './customers/sandbox-customers.ts';
import { createSqlCustomerDirectory, sandboxCustomersPresent, seedSandboxCustomers } from './storage/sql/customer-directory.ts';
import { seedSandboxTotp } from './sca/sandbox-factors.ts';
import { createSecretBox, loadEncryptionKey, TOTP_KEY_FILE } from './sca/secret-box.ts';
import { createSqlTotpStore } from './storage/sql/totp-store.ts';
import { createTotpFactor } from './sca/totp-factor.ts';
import { isStrong, totpFactor } from './sca/authentication.ts';
import { createSqlFederatedCustomerDirectory } from './storage/sql/federated-customer-directory.ts';
import { FEDERATION_FAILURE_KINDS } from './federation/federation-failure.ts';
import { createSignInStates } from './federation/sign-in-states.ts';
import { createUpstreamIdp } from './federation/upstream-idp.ts';
import { createFederatedLogin } from './interactions/federated-login.ts';
import { createSqlAccountDirectory, seedSandboxAccounts } from './storage/sql/account-directory.ts';
import { createAccountSource } from './accounts/account-source.ts';
import { createLoginThrottle } from './customers/login-throttle.ts';
import { createConsentApiRouter } from './consents/consent-api.ts';
import { createGrantManagementRouter } from './consents/grant-management-api.ts';
import { createConsentService, type ConsentService } from './consents/consent-service.ts';
import { consentProviderMiddleware } from './provider/consent-middleware.ts';
import { createConsentUse } from './consents/consent-use.ts';
import { countAuthorisedConsents, createSqlConsentStore } from './storage/sql/consent-store.ts';
import { createCustomerSessions } from './dashboard/customer-sessions.ts';
import { createCsrf } from './http/csrf.ts';
import { listenOn } from './http/listen.ts';
import { trackConnections } from './http/listener-connections.ts';
import { createRateLimitMiddleware } from './http/rate-limits.ts';
import { storableProviderInput } from './http/storable-input.ts';
import { createAuditLog, type AuditLog } from './audit/audit-log.ts';
import { createSqlAuditStore } from './storage/sql/audit-store.ts';
import { clusterMetricsSource } from './cluster/cluster.ts';
import { createThreatProtection, type ThreatProtection } from './threats/threat-protection.ts';
import { createSqlRestrictionStore } from './storage/sql/restriction-store.ts';
import { createMemoryThreatState } from './storage/embedded/threat-state.ts';
import { createRedisThreatState } from './storage/redis/threat-state.ts';
import { attachProviderAudit } from './audit/provider-audit.ts';
import { createCertificateGate } from './certificates/certificate-gate.ts';
import type { CertificateRegistry } from './certificates/certificate-registry.ts';
import { createRevocationChecker } from './certificates/revocation-checker.ts';
import { createRevocationMonitor, type RevocationMonitor } from './certificates/revocation-monitor.ts';
import { createSqlCertificateRegistry } from './storage/sql/certificate-registry.ts';
import { cachedCertificateRegistry } from './certificates/cached-certificate-registry.ts';
import { cachedConsentStore } from './consents/cached-consent-store.ts';
import { cachedModelStore } from './storage/cached-model-store.ts';
import { recordingTokenLookups, refreshTokenReadsAfterShortLived } from './storage/introspection-token-lookups.ts';
import { createInvalidatingCache, DEFAULT_MAX_AGE_MS } from './caching/invalidating-cache.ts';
import type { InvalidationTopic } from './caching/invalidation.ts';
import { deepFrozen } from './caching/copies.ts';
import { createExpiryNotices, NOTIFICATION_URI_METADATA, type ExpiryNotices } from './certificates/expiry-notices.ts';
import { createHttpsNoticeDelivery } from './certificates/notice-delivery.ts';
import { createOutboundTargetGuard } from './http/outbound-target-guard.ts';
import { createSqlExpiryNoticeStore } from './storage/sql/expiry-notice-store.ts';
import { createExpiryNoticeDiagnosticsRouter } from './diagnostics/expiry-notice-diagnostics.ts';
import { createFollowingJwsSigner } from './keys/jws-signer.ts';
import { lifecycleInDatabase, rotationPolicy } from './keys/key-rotation.ts';
import { createSharedSigningKeys, sealedKeyMaterial, sharedKeyMetrics, signingKeyBox, type SharedSigningKeys } from './keys/shared-signing-keys.ts';
import { createSqlSigningKeyStore } from './storage/sql/signing-key-store.ts';
import { createViews } from './interactions/views.ts';
import { createPasskeyCeremonies } from './passkeys/passkey-ceremonies.ts';
import { createSqlPasskeyStore } from './storage/sql/passkey-store.ts';
import { loadOrCreateSecrets } from './keys/secrets.ts';
import { loadOrCreateSigningKeys, providerJwks } from './keys/signing-keys.ts';
import type { Logger } from './observability/logger.ts';
import { attachProviderEventLogging } from './observability/provider-events.ts';
import { createProvider, guardQuarantinedClients, PROVIDER_ROUTES } from './provider/create-provider.ts';
import { createIntrospectionScope } from './provider/introspection-scope.ts';
import { actionableErrors } from './provider/actionable-errors.ts';
import { createDpopNonces, PROVIDER_BODY, replaceProviderKeys, routeProviderNotices } from './provider/internals.ts';
import { giveBackCodeOnFailure } from './provider/token-failure.ts';
import { hsmKeyMaterial, openHsmSigning, signingFailuresCounter } from './provider/external-signing-keys.ts';
import { openPkcs11Token } from './keys/pkcs11-token.ts';
import { createRegistrationMiddleware } from './provider/registration-middleware.ts';
import { createSqlTppRecordStore } from './storage/sql/tpp-record-store.ts';
import { createDirectoryKeys } from './registration/directories.ts';
import { createSandboxApiRouter, sandboxApiIdentifier } from './sandbox/sandbox-api.ts';
import { createSandboxRevocationRouter } from './sandbox/revocation-services.ts';
import { createSqlSandboxRevocationStore } from './storage/sql/sandbox-revocation-store.ts';
import { startSandboxAccountService } from './sandbox/sandbox-account-service.ts';
import { createAdminServer } from './admin/admin-server.ts';
import { createGatewayCheck } from './gateway-check/gateway-check.ts';
import { createGatewayCheckServer, GATEWAY_CHECK_OUTCOMES } from './gateway-check/gateway-check-server.ts';
import { createTokenFactsCache, type TokenFactsCache } from './gateway-check/token-facts.ts';
import { connectTokenFacts } from './gateway-check/token-facts-invalidation.ts';
import { revocationAnnouncingStore } from './storage/revocation-announcing-store.ts';
import { loadAdminCredentials } from './admin/operator-authentication.ts';
import { createMetrics } from './observability/metrics.ts';
import { createMtlsOutcomeMiddleware } from './tls/mtls-outcome.ts';
import { createCallDiagnostics } from './diagnostics/call-diagnostics.ts';
import { createMemoryCallJournal } from './storage/embedded/call-journal.ts';
import { createRedisCallJournal } from './storage/redis/call-journal.ts';
import { createPortalRouter } from './portal/portal-routes.ts';
import { createPortalSessions } from './portal/portal-sessions.ts';
import { tracingMiddleware } from './observability/tracing.ts';
import { ensureSandboxMaterial } from './sandbox/sandbox-material.ts';
import { SANDBOX_SSA_LIFETIME_SECONDS } from './sandbox/tpp-credentials.ts';
import { createAdapterFactory, revokeGrant } from './storage/adapter.ts';
import { createMemoryAttemptCounterStore } from './storage/embedded/memory-attempt-counter-store.ts';
import { createMemoryRateCounterStore } from './storage/embedded/memory-rate-counter-store.ts';
import { createRedisAttemptCounterStore } from './storage/redis/redis-attempt-counter-store.ts';
import { createRedisRateCounterStore } from './storage/redis/redis-rate-counter-store.ts';
import { createStorage } from './storage/create-storage.ts';
import { pendingMigrations } from './storage/sql/migrate.ts';
import { loadTrustAnchors } from './pki/certificate-chain.ts';
import { createClientCertificateResolver } from './tls/client-certificate.ts';
import { createHttpServer, createHttpsServer, tlsServerOptions } from './tls/https-server.ts';
import { createSessionChains } from './tls/session-chains.ts';
import { createTrustFileReloader, type TrustFileReloader } from './trust/trust-file-reload.ts';
import { configHash, describeConfig } from './config/config-description.ts';
import { createInstanceHeartbeat, type InstanceHeartbeat } from './deployment/instance-heartbeat.ts';
import { createSqlInstanceStore } from './storage/sql/instance-store.ts';
import { createRenderError } from './interactions/render-error.ts';
import { createCibaHooks } from './ciba/ciba-hooks.ts';
import { createBankAppCallbackRouter, createBankAppNotifier } from './ciba/bank-app-interface.ts';
import { createDecoupledAuthorisation, type DecoupledAuthorisation } from './ciba/decoupled-authorisation.ts';
import { createPingDelivery, type PingDelivery } from './ciba/ping-delivery.ts';
import { cibaPollPacing } from './ciba/poll-pacing.ts';
import { createSqlDecoupledRequestStore } from './storage/sql/decoupled-request-store.ts';
import { createBankAppApiRouter } from './sandbox/bank-app-api.ts';
import { createBankAppPageRouter } from './sandbox/bank-app-page.ts';
import { createOwnCertificates, type OwnCertificates } from './acme/own-certificates.ts';
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
  consents: ConsentService;
  /** The customers tokens are issued for, as the request path reads them (in memory, src/customers/cached-customer-directory.ts). */
  customers: CustomerDirectory;
  certificates: { registry: CertificateRegistry; monitor: RevocationMonitor; notices?: ExpiryNotices };
  /** Moat's own certificates renewed by ACME, when `acme.enabled`. */
  ownCertificates?: OwnCertificates;
  /** Trust anchors, directory JWKS files and operator CRLs, re-read when they change. */
  trustFiles: TrustFileReloader;
  /** This instance's configuration hash, recorded with a heartbeat for drift detection. */
  heartbeat: InstanceHeartbeat;
  audit: AuditLog;
  threats: ThreatProtection;
  /** Decoupled authorisation (CIBA), when enabled: the bank-app side and the ping notifications. */
  ciba?: { authorisation: DecoupledAuthorisation; ping: PingDelivery };
  /** The admin listener's port once listening (metrics), when it is enabled. */
  adminPort?: number;
  /** The gateway check listener's port once listening, when `gatewayCheck.enabled`. */
  gatewayCheckPort?: number;
  /** Per-token facts of the gateway check (src/gateway-check/token-facts.ts). */
  tokenFacts: TokenFactsCache;
  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(): Promise<number>;
  /** Stops accepting connections, drains in-flight requests and closes storage. */
  close(): Promise<void>;
  /** Ends every connection of the public and gateway-check listeners at once, requests in flight or not: a drain's deadline (`moat start`; the admin listener's close ends its own at once). Returns how many it ended. */
  closeConnections(): number;
}

/**
 * Builds every part of a Moat process from a validated configuration: storage, keys, sandbox
 * material, trust, the provider, the Koa app and the TLS server. Nothing here reads process.env.
 */
export interface MoatServerOptions {
  /** The clock for Moat's own time rules (the SCA re-authentication period); tests control it. */
  now?: () => Date;
  /**
   * The clock of the signing-key rotation schedule (keys.source database); `now` unless given, so
   * that a test can run a 90-day schedule without moving the clock one-time codes are checked by.
   */
  keysNow?: () => Date;
}

export async function createMoatServer(configured: MoatConfig, logger: Logger, options: MoatServerOptions = {}): Promise<MoatServer> {
  const now = options.now ?? (() => new Date());
  const sandbox = configured.mode === 'sandbox' ? await ensureSandboxMaterial(configured.dataDir) : undefined;
  const config = sandbox === undefined ? configured : withSandboxApi(configured);

  const trustAnchorFiles = [...config.trustAnchors, ...(sandbox === undefined ? [] : [sandbox.tppCaCertFile])];
  const anchors = loadTrustAnchors(trustAnchorFiles);
  const directories: DirectoryConfig[] = [...config.directories];
  if (sandbox !== undefined && !directories.some((d) => d.issuer === sandbox.directory.issuer)) {
    directories.push({
      name: 'Moat sandbox directory',
      issuer: sandbox.directory.issuer,
      jwksFile: sandbox.directory.jwksFile,
      claimStyle: 'uk-ob',
      orgIdAttribute: sandbox.directory.orgIdAttribute,
      jwksRefetchCooldownSeconds: 30,
      // Its statements live with the credentials `moat sandbox tpp` wrote, and always carry exp.
      requireSsaExp: true,
      maxSsaAgeSeconds: SANDBOX_SSA_LIFETIME_SECONDS,
    });
  }

  // Before storage, so that a backend failing from the first call on is counted.
  const metrics = createMetrics();
  // Signing keys in the bank's HSM (which signs; Moat never holds the key): a token that cannot be
  // used stops the start here, before any storage is opened or migrated.
  const signingFailures = signingFailuresCounter(metrics.registry);
  // With keys.rotation.every the token's keys follow the shared schedule (below); without, their labels.
  const keysInDatabase = lifecycleInDatabase(config);
  const hsm = config.keys.source === 'pkcs11' && !keysInDatabase ? await openHsmSigning(config.keys, logger, signingFailures) : undefined;
  const scheduledToken = config.keys.source === 'pkcs11' && keysInDatabase ? await openPkcs11Token(config.keys.pkcs11!) : undefined;
  const closeToken = () => {
    hsm?.close();
    scheduledToken?.close();
  };
  const closeOnFailure: (() => void)[] = [closeToken];
  let storage: Awaited<ReturnType<typeof createStorage>>;
  try {
    storage = await createStorage(config, logger, metrics.storageErrors);
  } catch (err) {
    closeToken();
    throw err;
  }
  // The hash of the configuration as loaded (file, MOAT_* overrides, defaults): every instance
  // started from the same one logs and reports the same hash; `moat config plan` compares with it.
  const heartbeat = createInstanceHeartbeat({
    store: createSqlInstanceStore(storage.sql),
    configHash: configHash(configured),
    metrics: metrics.registry,
    logger,
  });
  logger.info({ event: 'config.loaded', configHash: heartbeat.configHash }, 'configuration loaded');
  let accountSource: Awaited<ReturnType<typeof createAccountSource>> | undefined;
  let ownCertificates: OwnCertificates | undefined;
  try {
    if (sandbox !== undefined) {
      await seedSandboxCustomers(storage.sql);
      await seedSandboxAccounts(storage.sql);
    } else if (config.customers.source === 'local') {
      const demo = await sandboxCustomersPresent(storage.sql);
      if (demo.length > 0) throw new SandboxCustomersInProduction(demo);
    }
    // Signing keys from a JWKS file, or from the HSM opened above (the database's come after the audit log).
    const fileKeys = config.keys.source === 'file' ? await loadOrCreateSigningKeys(config.keys.dir, config.keys.algorithms) : undefined;
    for (const key of hsm?.created ?? fileKeys?.created ?? []) {
      logger.info({ event: 'keys.generated', kid: key.kid, alg: key.alg, source: config.keys.source }, 'signing key generated');
    }
    const secrets = loadOrCreateSecrets(config.keys.dir);
    // One-time-code secrets are sealed with the configured key; the sandbox generates one under keys/.
    // Customers of the bank's IdP (customers.source: oidc) use them too: Moat's own linked step for
    // payments and its step-up of logins below SCA (src/interactions/federated-login.ts).
    const totpStore = createSqlTotpStore(storage.sql);
    const totpBox = config.sca.totp.enabled
      ? createSecretBox(
          loadEncryptionKey({
            ...(config.sca.totp.encryptionKey === undefined ? {} : { key: config.sca.totp.encryptionKey }),
            ...(config.sca.totp.encryptionKeyFile === undefined ? {} : { keyFile: config.sca.totp.encryptionKeyFile }),
            ...(sandbox === undefined ? {} : { generateAt: join(config.keys.dir, TOTP_KEY_FILE) }),
          }),
        )
      : undefined;
    // The demo customers are the local directory's; a bank IdP's customers enrol their own.
    if (sandbox !== undefined && totpBox !== undefined && config.customers.source === 'local')
      await seedSandboxTotp(totpStore, totpBox, SANDBOX_CUSTOMERS, now());

    // TLS session resumption on the public listener, with the chain each session's certificate was sent with.
    const resumption = config.tls.sessionResumption;
    const sessionChains =
      config.tls.terminate && resumption.enabled
        ? createSessionChains({ lifetimeSeconds: resumption.lifetimeSeconds, ticketKeyRotationSeconds: resumption.ticketKeyRotationSeconds })
        : undefined;
    const sessionLifetime = sessionChains === undefined ? {} : { sessionLifetimeSeconds: resumption.lifetimeSeconds };
    const clientCertificate = createClientCertificateResolver({
      ...(sessionChains === undefined ? {} : { sessionChains }),
      trustedProxies: config.trustedProxies.addresses,
      format: config.trustedProxies.format,
      anchors,
      onIgnoredHeader: (info) =>
        logger.warn({ event: 'forwarded_certificate.ignored', outcome: 'mtls_untrusted_forwarder', ...info }, 'forwarded client certificate ignored'),
    });
    // The TPP certificate lifecycle: registry, revocation checks (OCSP, then CRL), the gate that
    // applies the registry's verdict to every request, and the background monitor.
    // The security audit log: every module that changes a TPP's, client's, customer's or
    // certificate's standing writes to it.
    const audit = createAuditLog(createSqlAuditStore(storage.sql), logger);
    // keys.source database: every instance reads the keys there, applies the rotation that is due and
    // hears of the others' (keys/shared-signing-keys.ts).
    let sharedKeys: SharedSigningKeys | undefined;
    const keyMetrics = sharedKeyMetrics(metrics.registry);
    if (keysInDatabase) {
      const material =
        scheduledToken === undefined ? sealedKeyMaterial(signingKeyBox(config)) : hsmKeyMaterial(scheduledToken, { logger, failures: signingFailures });
      sharedKeys = await createSharedSigningKeys({
        store: createSqlSigningKeyStore(storage.sql, config.keys.source === 'pkcs11' ? 'pkcs11' : 'database'),
        material,
        policy: rotationPolicy(config),
        announcements: {
          // A missed announcement (the subscription was lost) is made good by reloading, as for one heard.
          subscribe: (onChange) =>
            storage.invalidation.subscribe({
              invalidate: (topic) => {
                if (topic === 'signing-keys') onChange();
              },
              reset: onChange,
            }),
        },
        checkIntervalSeconds: config.keys.rotation.checkIntervalSeconds,
        now: options.keysNow ?? now,
        audit,
        logger,
        metrics: keyMetrics,
      });
      const opened = sharedKeys;
      closeOnFailure.push(() => void opened.close());
    }
    const signingJwks = () => hsm?.jwks ?? sharedKeys?.jwks() ?? providerJwks(fileKeys!.keys);
    // What the request path reads on every call, in memory, forgotten when Postgres announces a
    // change (src/caching/): at once on this instance, within DEFAULT_MAX_AGE_MS on every other.
    const cacheOf = <V>(topic: InvalidationTopic, maxEntries: number, copy?: (value: V) => V) => {
      const reads = { hit: metrics.cacheReads.labels({ cache: topic, result: 'hit' }), miss: metrics.cacheReads.labels({ cache: topic, result: 'miss' }) };
      return createInvalidatingCache<V>({
        bus: storage.invalidation,
        topic,
        maxEntries,
        maxAgeMs: DEFAULT_MAX_AGE_MS,
        onRead: (result) => reads[result].inc(),
        ...(copy === undefined ? {} : { copy }),
      });
    };
    const registry = cachedCertificateRegistry(
      createSqlCertificateRegistry(storage.sql, audit),
      cacheOf('certificate', 10_000, (s) => (s === undefined ? s : { ...s })),
    );
    const failMode = config.certificates.revocation.failMode ?? (config.mode === 'production' ? 'closed' : 'open');
    const checker = createRevocationChecker({
      timeoutMs: config.certificates.revocation.timeoutMs,
      defaultCacheSeconds: config.certificates.revocation.checkIntervalSeconds,
      // The sandbox CA's OCSP responder and CRL are served by Moat itself, under the sandbox server CA.
      ...(sandbox === undefined ? {} : { extraCaPem: sandbox.serverCaPem }),
    });
    const certificateGate = createCertificateGate({ registry, clientCertificate, failMode });
    // TPPs told before their certificates expire: a signed notice to the endpoint each client registered.
    const noticeConfig = config.certificates.expiryNotices;
    const expiryNotices = noticeConfig.enabled
      ? createExpiryNotices({
          store: createSqlExpiryNoticeStore(storage.sql),
          registry,
          logger,
          issuer: config.issuer,
          signer: await createFollowingJwsSigner(signingJwks, config.keys.algorithms[0]),
          delivery: createHttpsNoticeDelivery({
            timeoutMs: noticeConfig.timeoutMs,
            ...(noticeConfig.caFile === undefined ? {} : { caPem: readFileSync(noticeConfig.caFile, 'utf8') }),
            // SSRF: a TPP's URL must not reach into the bank's network; the sandbox's receivers are local.
            guard: createOutboundTargetGuard({ allowPrivate: config.mode === 'sandbox', allowed: noticeConfig.allowedPrivateTargets }),
          }),
          metrics: metrics.registry,
          // Read when a notice is raised, after start-up: the provider exists by then.
          endpointOf: async (clientId) => {
            const uri = (await provider.Client.find(clientId))?.metadata()[NOTIFICATION_URI_METADATA];
            return typeof uri === 'string' ? uri : undefined;
          },
          maxAttempts: noticeConfig.maxAttempts,
          retryBaseSeconds: noticeConfig.retryBaseSeconds,
          intervalSeconds: noticeConfig.deliveryIntervalSeconds,
          timeoutMs: noticeConfig.timeoutMs,
        })
      : undefined;
    const certificateMonitor = createRevocationMonitor({
      registry,
      checker,
      logger,
      intervalSeconds: config.certificates.revocation.checkIntervalSeconds,
      expiryWarningDays: config.certificates.expiryWarningDays,
      ...(expiryNotices === undefined ? {} : { onExpiring: expiryNotices.raise }),
    });

    // customers.source: oidc — the bank's OpenID Provider signs customers in; Moat records who it vouched for.
    const idpConfig = config.customers.oidc;
    const upstreamIdp = config.customers.source === 'oidc' && idpConfig !== undefined ? await createUpstreamIdp(idpConfig, config.issuer) : undefined;
    if (upstreamIdp !== undefined) closeOnFailure.push(() => void upstreamIdp.close());
    // The customer behind every token issued is read from memory, forgotten when Postgres announces a change.
    const customerCache = cacheOf<Customer | undefined>('customer', 10_000, copyCustomer);
    const federatedCustomers = upstreamIdp === undefined ? undefined : cachedCustomerDirectory(createSqlFederatedCustomerDirectory(storage.sql), customerCache);
    const customers = federatedCustomers ?? cachedCustomerDirectory(createSqlCustomerDirectory(storage.sql), customerCache);
    // accounts.source: the customer_account table, the bank's account service, or the sandbox's own.
    // Moat's own certificates by ACME: in hand (from their files, or ordered) before anything presents them.
    ownCertificates = await createOwnCertificates({ config, logger, registry: metrics.registry, now });
    accountSource = await createAccountSource({
      config,
      database: createSqlAccountDirectory(storage.sql),
      logger,
      registry: metrics.registry,
      startSandboxService: startSandboxAccountService,
      now: () => now().getTime(),
    });
    const accounts = accountSource.directory;
    const accountService = accountSource.accountService;
    if (accountService !== undefined) ownCertificates?.accountServiceClient?.onRenewed((renewed) => accountService.setClientCertificate(renewed));
    // What the gateway check knows of tokens, kept per token; forgotten on every instance when a
    // token, grant or client changes through these stores (src/gateway-check/token-facts.ts).
    const tokenFacts = createTokenFactsCache({
      maxEntries: config.gatewayCheck?.enabled === true ? config.gatewayCheck.cache.maxEntries : 0,
      live: () => storage.invalidation.live,
    });
    const announceRevoked = connectTokenFacts(tokenFacts, storage.invalidation, logger);
    // Clients from memory; introspection's Grant reads, and only those, too (cached-model-store.ts says why);
    // its refresh-token read skipped when the value was an access token (introspection-token-lookups.ts).
    const introspection = createIntrospectionScope(PROVIDER_ROUTES.introspection);
    const lookups = () => introspection.current()?.tokenLookups;
    const tokenStores = {
      durable: revocationAnnouncingStore(
        refreshTokenReadsAfterShortLived(
          cachedModelStore(cachedModelStore(storage.durable, { model: 'Client', cache: cacheOf('client', 2_000) }), {
            model: 'Grant',
            cache: cacheOf('grant', 20_000),
            servesReadsWhen: introspection.active,
          }),
          lookups,
        ),
        announceRevoked,
      ),
      shortLived: revocationAnnouncingStore(recordingTokenLookups(storage.shortLived, lookups), announceRevoked),
    };
    const consents = createConsentService({
      store: cachedConsentStore(createSqlConsentStore(storage.sql), cacheOf('consent-grant', 5_000, deepFrozen)),
      revokeGrant: (grantId) => revokeGrant(tokenStores, grantId),
      logger,
      audit,
    });
    // When each TPP last used its consents, for the customer's dashboard: written off the request path.
    const consentUse = createConsentUse({
      record: (grantId, at) => consents.recordUse(grantId, at),
      now: () => new Date(),
      onError: (err) => logger.warn({ event: 'consent.use_not_recorded', err }, 'the last use of a consent could not be recorded'),
    });
    const views = createViews({ branding: config.branding, scopes: config.scopes, sandbox: sandbox !== undefined });
    // Passkeys: credentials in Postgres, single-use challenges in the short-lived store.
    const passkeyStore = createSqlPasskeyStore(storage.sql);
    const passkeys = {
      store: passkeyStore,
      ceremonies: createPasskeyCeremonies({
        issuer: config.issuer,
        rpName: defaultText(config.branding.bankName),
        store: passkeyStore,
        challenges: storage.shortLived,
      }),
    };
    const ready = async () => {
      await Promise.all([storage.durable.ping(), storage.shortLived.ping()]);
      const pending = await pendingMigrations(storage.sql);
      if (pending.length > 0) throw new Error(`migrations pending: ${pending.join(', ')}`);
    };
    metrics.attachSources({
      activeConsents: () => countAuthorisedConsents(storage.sql),
      certificates: () => registry.list(),
      ready,
    });
    // Threat detection: learned baselines per TPP, flags, step-up and quarantine.
    const threats = createThreatProtection({
      config,
      restrictionStore: createSqlRestrictionStore(storage.sql),
      state:
        storage.redis === undefined
          ? createMemoryThreatState()
          : createRedisThreatState(storage.redis, config.storage.redisKeyPrefix, config.threats.bucketSeconds),
      audit,
      logger,
      metrics: metrics.registry,
      revokeClientTokens: (clientId, reason) => consents.revokeAllForClient(clientId, reason),
    });
    await threats.restrictions.refresh();
    // A quarantine or release made anywhere is in force here as soon as Postgres announces it.
    threats.restrictions.follow(storage.invalidation);
    // Sign-in attempts (and any other secret a customer types) are counted across instances in
    // Redis; while it is away, per instance rather than not at all.
    const attemptCounters =
      storage.redis === undefined
        ? createMemoryAttemptCounterStore()
        : createRedisAttemptCounterStore(storage.redis, config.storage.redisKeyPrefix, {
            fallback: createMemoryAttemptCounterStore(),
            onUnavailable: metrics.storageErrors,
          });
    const totp =
      totpBox === undefined
        ? undefined
        : createTotpFactor({
            store: totpStore,
            box: totpBox,
            counters: attemptCounters,
            policy: config.sca.totp,
            audit,
            now,
            ...(sandbox === undefined ? {} : { codesReusableFor: (customerId: string) => SANDBOX_CUSTOMERS.some((c) => c.id === customerId) }),
          });
    // Decoupled authorisation (CIBA): the provider's hooks reach the bank-app side built just after it.
    let decoupled: DecoupledAuthorisation | undefined;
    // The bank's own app (ciba.bankApp): told of each request, completes it at its callback.
    let providerRef: Provider | undefined;
    const bankApp =
      cibaEnabled(config) && config.ciba.bankApp !== undefined
        ? {
            config: config.ciba.bankApp,
            issuer: config.issuer,
            provider: () => providerRef!,
            authorisation: () => decoupled!,
            clientCertificate,
            logger,
          }
        : undefined;
    const cibaHooks = cibaEnabled(config)
      ? createCibaHooks({
          config,
          consents,
          authorisation: () => decoupled!,
          ...(bankApp === undefined ? {} : { notifyBankApp: createBankAppNotifier(bankApp) }),
        })
      : undefined;
    const unrouteProviderNotices = routeProviderNotices(logger);
    closeOnFailure.push(unrouteProviderNotices);
    const provider = createProvider({
      ...(cibaHooks === undefined ? {} : { ciba: cibaHooks }),
      config,
      adapter: createAdapterFactory(tokenStores, errors),
      jwks: signingJwks(),
      cookieKeys: secrets.cookieKeys,
      dpopNonceSecret: secrets.dpopNonceSecret,
      customers,
      consents,
      clientCertificate,
      certificateGate,
      renderError: createRenderError(views, { interactionMinutes: Math.round(config.tokens.interactionTtl / 60) }),
      // OpenID Connect Discovery 1.0 §3: the ui_locales the customer pages honour.
      uiLocales: views.catalogues.locales,
      clientStanding: threats.standing,
      now,
    });
    // A new key set replaces the provider's whole: it signs with what it publishes, and nothing else.
    sharedKeys?.onChange((jwks) => replaceProviderKeys(provider, jwks));
    providerRef = provider;
    guardQuarantinedClients(provider, threats.standing);
    attachProviderEventLogging(provider, logger);
    attachProviderAudit(provider, audit);
    metrics.attachProvider(provider);
    const admin = config.admin.enabled
      ? createAdminServer({
          metrics: clusterMetricsSource(metrics.registry),
          registry,
          consents,
          audit,
          restrictions: threats.restrictions,
          passkeys: passkeyStore,
          logger,
          factors: { ...(totp === undefined ? {} : { totp }), customerExists: (id) => totpStore.customerExists(id) },
          ...(expiryNotices === undefined ? {} : { notices: expiryNotices }),
          expiryWarningDays: config.certificates.expiryWarningDays,
          configuration: { describe: () => describeConfig(configured), heartbeat },
          credentials: await loadAdminCredentials(config.admin, { createMissingToken: config.mode === 'sandbox' }),
          hosts: { host: config.admin.host, allowedHosts: config.admin.allowedHosts },
        })
      : undefined;
    provider.use(consentProviderMiddleware(consents, { onUse: consentUse.used }));
    provider.use(actionableErrors(provider));
    provider.use(giveBackCodeOnFailure(provider, logger));
    const ping = createPingDelivery({
      provider,
      logger,
      maxAttempts: config.ciba.ping.maxAttempts,
      retryBaseMs: config.ciba.ping.retryBaseMs,
      timeoutMs: config.ciba.ping.timeoutMs,
      // A TPP's notification endpoint is on the internet: in production, never a private address.
      guard: createOutboundTargetGuard({ allowPrivate: config.mode === 'sandbox', allowed: [] }),
      ...(config.ciba.ping.caFile === undefined ? {} : { caPem: readFileSync(config.ciba.ping.caFile, 'utf8') }),
    });
    if (cibaHooks !== undefined) {
      decoupled = createDecoupledAuthorisation({
        provider,
        store: createSqlDecoupledRequestStore(storage.sql),
        consents,
        accounts,
        ping,
        logger,
        now,
        scopeAccessDays: config.consents.scopeAccessDays,
        steppedUp: (clientId) => threats.standing.steppedUp(clientId) !== undefined,
      });
      provider.use(
        cibaPollPacing({ store: storage.shortLived, intervalSeconds: config.ciba.pollIntervalSeconds, keepSeconds: config.ciba.maxExpirySeconds, now }),
      );
    }
    const loginThrottle = createLoginThrottle(config.customers.loginThrottle, attemptCounters);
    const interactionSca = {
      ...(totp === undefined ? {} : { totp }),
      steppedUp: (clientId: string) => threats.standing.steppedUp(clientId) !== undefined,
      now,
    };

    // What each TPP call looked like to Moat, for the TPP to read back (sandbox by default).
    const diagnostics =
      (config.diagnostics.enabled ?? config.mode === 'sandbox')
        ? createCallDiagnostics({
            journal:
              storage.redis === undefined
                ? createMemoryCallJournal({ retentionSeconds: config.diagnostics.retentionSeconds, perOwner: config.diagnostics.recentPerOwner })
                : createRedisCallJournal(storage.redis, config.storage.redisKeyPrefix, {
                    retentionSeconds: config.diagnostics.retentionSeconds,
                    perOwner: config.diagnostics.recentPerOwner,
                  }),
            clientCertificate,
            refusal: certificateGate.refusal,
            registry,
            anchors,
            logger,
          })
        : undefined;
    // Moat's own APIs check certificates and DPoP proofs as the token endpoint does: one jti store,
    // the token endpoint's nonces, htu against the issuer.
    const senderConstraint = {
      issuer: config.issuer,
      clientCertificate,
      certificateRefusal: certificateGate.refusal,
      replay: storage.shortLived,
      nonces: createDpopNonces(secrets.dpopNonceSecret),
    };
    // The check endpoint API gateways call before each bank API request, on its own listener.
    if (config.gatewayCheck?.enabled === true) for (const outcome of GATEWAY_CHECK_OUTCOMES) metrics.gatewayChecks.inc({ outcome }, 0);
    const gatewayCheck =
      config.gatewayCheck?.enabled === true
        ? createGatewayCheckServer({
            config: config.gatewayCheck,
            logger,
            onOutcome: (outcome) => metrics.gatewayChecks.inc({ outcome }),
            check: createGatewayCheck({
              config: config.gatewayCheck,
              certificateFormat: config.gatewayCheck.forwardedCertificate ?? config.trustedProxies.format,
              provider,
              consents,
              bindingAlive: certificateGate.bindingAlive,
              quarantined: threats.standing.quarantined,
              replay: storage.shortLived,
              nonces: senderConstraint.nonces,
              cache: tokenFacts,
              onConsentUse: consentUse.used,
              onMalformedCertificate: (detail) =>
                logger.warn({ event: 'gateway_check.malformed_certificate', detail }, 'the gateway forwarded an unreadable client certificate'),
            }),
          })
        : undefined;
    const csrf = createCsrf({ keys: secrets.cookieKeys, origin: new URL(config.issuer).origin });

    const directoryKeys = createDirectoryKeys(directories);
    const registration = createRegistrationMiddleware({
      config,
      provider,
      directories: directoryKeys,
      clientCertificate,
      tppRecords: createSqlTppRecordStore(storage.sql),
      registry,
      checker,
      failMode,
      consents,
      replay: storage.shortLived,
      audit,
      logger,
    });
    const customerSessions = createCustomerSessions(storage.shortLived, config.customers.dashboardSessionTtl);
    // Every kind from zero, so an alert on a rate sees the series before the first failure.
    if (upstreamIdp !== undefined) for (const kind of FEDERATION_FAILURE_KINDS) metrics.upstreamIdpFailures.inc({ kind }, 0);
    const federatedLogin =
      upstreamIdp === undefined || idpConfig === undefined || federatedCustomers === undefined
        ? undefined
        : createFederatedLogin({
            provider,
            idp: upstreamIdp,
            idpConfig,
            states: createSignInStates(storage.shortLived),
            customers: federatedCustomers,
            views,
            csrf,
            logger,
            ttlSeconds: config.tokens.interactionTtl,
            onFailure: (kind) => metrics.upstreamIdpFailures.inc({ kind }),
            startDashboardSession: (ctx, customerId) => customerSessions.start(ctx, customerId, 'strong'),
            async startDashboardStepUp(ctx, customerId, upstream) {
              // A code completes it only when it is of another category than the bank's login (RTS Art. 4).
              if (totp === undefined || (await totp.status(customerId)) !== 'active' || !isStrong([upstream, totpFactor()])) return false;
              await customerSessions.startPending(ctx, customerId);
              return true;
            },
          });
    const app = createApp({
      config,
      provider,
      customers,
      accounts,
      consents,
      views,
      logger,
      cookieKeys: secrets.cookieKeys,
      csrf,
      passkeys,
      audit,
      ...(federatedLogin === undefined ? {} : { federatedLogin }),
      ...(diagnostics === undefined ? {} : { afterRequest: diagnostics.recordCall }),
      loginThrottle,
      sca: interactionSca,
      customerSessions,
      edge: [
        tracingMiddleware(),
        metrics.middleware,
        threats.middleware,
        certificateGate.middleware,
        // Every token issued is audited off the response path; while Postgres cannot keep up (or is
        // away) and the audit queue is full, requests that may issue tokens wait rather than any
        // record being dropped.
        async (ctx, next) => {
          if (ctx.method === 'POST') await audit.room();
          await next();
        },
        createMtlsOutcomeMiddleware({ provider, clientCertificate, refusal: certificateGate.refusal }),
        createRateLimitMiddleware({
          limits: config.rateLimits,
          counters:
            storage.redis === undefined
              ? createMemoryRateCounterStore()
              : createRedisRateCounterStore(storage.redis, { fallback: createMemoryRateCounterStore(), onUnavailable: metrics.storageErrors }),
          keyPrefix: config.storage.redisKeyPrefix,
          clientCertificate,
          logger,
        }),
      ],
      routers: [
        createConsentApiRouter({ provider, consents, issuer: config.issuer, senderConstraint, logger }),
        createGrantManagementRouter({ provider, consents, senderConstraint, logger }),
        ...(bankApp === undefined ? [] : [createBankAppCallbackRouter(bankApp)]),
        ...(sandbox === undefined
          ? []
          : [
              createSandboxApiRouter({ provider, issuer: config.issuer, senderConstraint, consents, accounts, onConsentUse: consentUse.used }),
              ...(decoupled === undefined
                ? []
                : [
                    createBankAppApiRouter({ authorisation: decoupled, customers, throttle: loginThrottle, sca: interactionSca, logger }),
                    createBankAppPageRouter({
                      provider,
                      authorisation: decoupled,
                      customers,
                      throttle: loginThrottle,
                      sca: interactionSca,
                      sessions: customerSessions,
                      views,
                      csrf,
                      logger,
                    }),
                  ]),
              createSandboxRevocationRouter({ material: sandbox, revocations: createSqlSandboxRevocationStore(storage.sql), clientCertificate, logger }),
              ...(config.portal.enabled
                ? [
                    createPortalRouter({
                      config,
                      material: sandbox,
                      sessions: createPortalSessions(storage.shortLived),
                      registry,
                      views,
                      csrf,
                      logger,
                      ...(diagnostics === undefined ? {} : { diagnostics }),
                    }),
                  ]
                : []),
            ]),
        ...(diagnostics === undefined ? [] : [diagnostics.router]),
        ...(expiryNotices === undefined
          ? []
          : [createExpiryNoticeDiagnosticsRouter({ clientCertificate, refusal: certificateGate.refusal, registry, notices: expiryNotices })]),
      ],
      beforeProvider: [registration, storableProviderInput(PROVIDER_BODY), introspection.middleware],
      ready,
    });

    // Consents past their expiry become Expired and lose their tokens (introspection already
    // answers inactive at the expiry itself: the grant's lifetime is capped by it).
    const expirySweep = setInterval(() => {
      consents.expireDue().then(
        (expired) => {
          if (expired > 0) logger.info({ event: 'consents.expired', expired }, 'consents expired');
        },
        (err: unknown) => logger.warn({ err, event: 'consents.expiry_failed' }, 'expiring consents failed'),
      );
    }, config.consents.expiryCheckSeconds * 1000);
    expirySweep.unref();
    certificateMonitor.start();
    expiryNotices?.start();
    threats.start();

    const handler = app.callback();
    const acmeServer = ownCertificates?.server?.current();
    let serverIdentity: { cert: string | Buffer; key: string | Buffer } | undefined = !config.tls.terminate
      ? undefined
      : acmeServer !== undefined
        ? { cert: acmeServer.certPem, key: acmeServer.keyPem }
        : { cert: readFileSync(config.tls.certFile ?? sandbox!.serverCertFile), key: readFileSync(config.tls.keyFile ?? sandbox!.serverKeyFile) };
    const server =
      serverIdentity !== undefined ? createHttpsServer({ ...serverIdentity, ca: anchors.pem, ...sessionLifetime, handler }) : createHttpServer(handler);
    if (serverIdentity !== undefined) sessionChains?.attach(server as unknown as TlsServer);
    const connections = trackConnections(server);
    // A new TLS context (renewed certificate, reloaded anchors) comes with new ticket keys: the
    // listener's own are put back, so sessions keep resuming and never on another worker.
    const replaceSecureContext = (identity: { cert: string | Buffer; key: string | Buffer }) => {
      (server as unknown as TlsServer).setSecureContext(tlsServerOptions({ ...identity, ca: anchors.pem, ...sessionLifetime }));
      sessionChains?.secureContextReplaced();
    };
    // A renewed server certificate: new handshakes get it, connections already open keep theirs.
    ownCertificates?.server?.onRenewed((renewed) => {
      const identity = { cert: renewed.certPem, key: renewed.keyPem };
      replaceSecureContext(identity);
      serverIdentity = identity;
    });

    // Trust files re-read when they change: the anchors object is shared by reference, so every
    // check sees the new set; the TLS context is swapped for the CertificateRequest's CA list.
    const trustFiles = createTrustFileReloader({
      logger,
      metrics: metrics.registry,
      intervalSeconds: config.trustFiles.checkIntervalSeconds,
      files: [
        ...trustAnchorFiles.map((file) => ({
          kind: 'trust_anchors' as const,
          file,
          reload: () => {
            const next = loadTrustAnchors(trustAnchorFiles);
            Object.assign(anchors, next);
            if (serverIdentity !== undefined) replaceSecureContext(serverIdentity);
          },
        })),
        ...directories.flatMap((d) =>
          d.jwksFile === undefined ? [] : [{ kind: 'directory_jwks' as const, file: d.jwksFile, reload: () => directoryKeys.get(d.issuer)?.reloadKeys?.() }],
        ),
        ...(config.admin.tls?.crlFiles ?? []).map((file) => ({ kind: 'operator_crl' as const, file })),
      ],
    });
    trustFiles.start();
    heartbeat.start();
    ownCertificates?.start();

    const listenPublic = () => listenOn(server, 'listen', config.listen.host, config.listen.port);

    const moat: MoatServer = {
      server,
      provider,
      config,
      storage,
      consents,
      customers,
      audit,
      threats,
      tokenFacts,
      ...(decoupled === undefined ? {} : { ciba: { authorisation: decoupled, ping } }),
      certificates: { registry, monitor: certificateMonitor, ...(expiryNotices === undefined ? {} : { notices: expiryNotices }) },
      trustFiles,
      heartbeat,
      ...(ownCertificates === undefined ? {} : { ownCertificates }),
      async listen() {
        if (admin !== undefined) moat.adminPort = await admin.listen(config.admin.host, config.admin.port);
        if (gatewayCheck !== undefined) moat.gatewayCheckPort = await gatewayCheck.listen();
        return listenPublic();
      },
      closeConnections: () => connections.closeAll() + (gatewayCheck?.closeConnections() ?? 0),
      close: async () => {
        clearInterval(expirySweep);
        sessionChains?.detach();
        certificateMonitor.stop();
        trustFiles.stop();
        await ownCertificates?.stop();
        await heartbeat.stop();
        await expiryNotices?.stop();
        threats.stop();
        ping.stop();
        // The listeners stop together: none waits for another's drain before it stops accepting.
        await Promise.all([
          admin?.close(),
          gatewayCheck?.close(),
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeIdleConnections();
            connections.drain();
          }),
        ]);
        // The last requests' observations, and the tokens they issued, may still be on their way.
        await threats.settled();
        await sharedKeys?.close();
        await audit.drain({ giveUpAfterMs: 10_000 });
        closeToken();
        await upstreamIdp?.close();
        await accountSource?.close();
        await storage.close();
        unrouteProviderNotices();
      },
    };
    return moat;
  } catch (err) {
    for (const close of closeOnFailure) close();
    await ownCertificates?.stop();
    await accountSource?.close();
    await storage.close();
    throw err;
  }
}

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Registry } from 'prom-client';
import type { MoatConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { createCertificateRenewal, ownCertificateMetrics, type CertificateRenewal } from './certificate-renewal.ts';
import { createChallengeResponder } from './challenge-responder.ts';

/*
 * Moat's own certificates by ACME (`acme`): the http-01 responder, one ACME account, and a
 * renewal for the server certificate and for the account service's client certificate, as
 * configured. server.ts hands each renewed certificate to whatever presents it.
 */

export interface OwnCertificates {
  server?: CertificateRenewal;
  accountServiceClient?: CertificateRenewal;
  /** The http-01 responder's bound port. */
  challengePort: number;
  /** Starts the periodic checks. */
  start(): void;
  stop(): Promise<void>;
}

/** Where the ACME account key lives when `acme.accountKeyFile` is unset. */
export const DEFAULT_ACCOUNT_KEY_FILE = join('acme', 'account-key.pem');

/** The server certificate's names by default: the issuer's host, and the mTLS aliases' host (RFC 8705 §5) when it differs. */
export function serverDomains(config: MoatConfig): string[] {
  const hosts = [config.issuer, config.tls.mtlsEndpointAliasOrigin].filter((u) => u !== undefined).map((u) => new URL(u).hostname);
  return [...new Set(hosts)];
}

/** Reads a file named by a configuration key; a missing file is reported by that key. */
function readKeyed(key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}

async function accountKey(config: MoatConfig, logger: Logger): Promise<string> {
  if (config.acme.accountKeyFile !== undefined) return readKeyed('acme.accountKeyFile', config.acme.accountKeyFile);
  const file = join(config.dataDir, DEFAULT_ACCOUNT_KEY_FILE);
  if (existsSync(file)) return readFileSync(file, 'utf8');
  const { default: acme } = await import('acme-client');
  const pem = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
  logger.info({ event: 'own_certificate.account_key_created', file }, 'ACME account key created');
  return pem;
}

/**
 * Binds the responder and loads or orders every configured certificate; resolves once each is in
 * hand (or throws, naming what is missing), so the listeners start with them.
 */
export async function createOwnCertificates(deps: {
  config: MoatConfig;
  logger: Logger;
  registry: Registry;
  now?: () => Date;
}): Promise<OwnCertificates | undefined> {
  const { config, logger } = deps;
  const settings = config.acme;
  if (!settings.enabled) return undefined;
  // acme-client (~10 MiB of heap) is loaded only when acme is enabled (issue 20 §6).
  const { createAcmeIssuer } = await import('./acme-issuer.ts');
  const eab = settings.externalAccountBinding;
  const responder = createChallengeResponder();
  const issuer = createAcmeIssuer({
    directoryUrl: settings.directoryUrl!,
    accountKeyPem: await accountKey(config, logger),
    ...(settings.caFile === undefined ? {} : { caPem: readKeyed('acme.caFile', settings.caFile) }),
    contact: settings.contact,
    ...(eab === undefined
      ? {}
      : { externalAccountBinding: { kid: eab.kid, hmacKey: eab.hmacKey ?? readKeyed('acme.externalAccountBinding.hmacKeyFile', eab.hmacKeyFile!).trim() } }),
    responder,
    timeoutMs: settings.timeoutMs,
  });
  const metrics = ownCertificateMetrics(deps.registry);
  const common = {
    issuer,
    metrics,
    logger,
    renewAtFraction: settings.renewAtFraction,
    retry: settings.retry,
    checkIntervalSeconds: settings.checkIntervalSeconds,
    ...(deps.now === undefined ? {} : { now: deps.now }),
  };
  // Paths and domains are checked by the configuration's cross-field rules (config/load.ts).
  const server =
    settings.server.enabled && config.tls.terminate
      ? createCertificateRenewal({
          ...common,
          name: 'server',
          domains: settings.server.domains ?? serverDomains(config),
          certFile: config.tls.certFile!,
          keyFile: config.tls.keyFile!,
        })
      : undefined;
  const http = config.accounts.http;
  const accountServiceClient =
    settings.accountServiceClient.enabled && http !== undefined
      ? createCertificateRenewal({
          ...common,
          name: 'account_service_client',
          domains: settings.accountServiceClient.domains!,
          certFile: http.clientCertFile,
          keyFile: http.clientKeyFile,
        })
      : undefined;
  const renewals = [server, accountServiceClient].filter((r) => r !== undefined);

  const challengePort = await responder.listen(settings.http01.host, settings.http01.port);
  try {
    for (const renewal of renewals) await renewal.ensure();
  } catch (err) {
    await responder.close();
    throw err;
  }
  return {
    ...(server === undefined ? {} : { server }),
    ...(accountServiceClient === undefined ? {} : { accountServiceClient }),
    challengePort,
    start() {
      for (const renewal of renewals) renewal.start();
    },
    async stop() {
      await Promise.all(renewals.map((r) => r.stop()));
      await responder.close();
    },
  };
}

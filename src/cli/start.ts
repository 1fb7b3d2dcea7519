import cluster from 'node:cluster';
import { resolveWorkerCount, runClusterPrimary } from '../cluster/cluster.ts';
import type { MoatConfig } from '../config/schema.ts';
import { SANDBOX_CUSTOMERS } from '../customers/sandbox-customers.ts';
import { loadOrCreateSecrets } from '../keys/secrets.ts';
import { loadOrCreateSigningKeys } from '../keys/signing-keys.ts';
import { loadOrCreateHsmKeys } from '../keys/hsm-signing-keys.ts';
import { lifecycleInDatabase } from '../keys/key-rotation.ts';
import { openPkcs11Token } from '../keys/pkcs11-token.ts';
import { ensureSandboxMaterial } from '../sandbox/sandbox-material.ts';
import { createLogger } from '../observability/logger.ts';
import { createMoatServer } from '../server.ts';
import type { CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage: moat start [--config FILE] [--data-dir DIR]
  runs the server until SIGINT or SIGTERM, then drains in-flight requests and stops (what npm start does)
  --data-dir DIR    where the sandbox material, the embedded database and the sandbox's admin token live
                    (default: dataDir, ./data)
`;

/** How long a graceful shutdown waits for in-flight requests before closing anyway. */
const DRAIN_TIMEOUT_MS = 10_000;

/** `moat start` (and `npm start`): runs the server until SIGINT/SIGTERM, then drains and stops. */
export async function startCommand(args: string[], io: CliIo): Promise<number> {
  const result = loadConfigOrReport(args, io);
  if ('exitCode' in result) return result.exitCode;
  const { config, source } = result.loaded;
  const logger = createLogger(config.logging.level);
  const workers = resolveWorkerCount(config.workers);
  if (workers > 1 && cluster.isPrimary) {
    if (config.storage.postgresUrl === undefined || config.storage.redisUrl === undefined) {
      io.stderr.write(
        `moat: workers: ${workers} processes need shared storage — set storage.postgresUrl and storage.redisUrl ` +
          '(the embedded database and in-process store belong to one process)\n',
      );
      return 2;
    }
    try {
      await prepareSharedMaterial(config);
    } catch (err) {
      io.stderr.write(`moat: could not start: ${(err as Error).message}\n`);
      return 1;
    }
    io.stdout.write(`Moat ${config.mode}: ${workers} worker processes on port ${config.listen.port} — issuer ${config.issuer}\n`);
    return runClusterPrimary({ workers, logger, stopTimeoutMs: DRAIN_TIMEOUT_MS + 5_000 });
  }
  let moat;
  try {
    moat = await createMoatServer(config, logger);
  } catch (err) {
    logger.fatal({ err, event: 'start.failed' }, 'Moat could not start');
    io.stderr.write(`moat: could not start: ${(err as Error).message}\n`);
    return 1;
  }
  let port: number;
  try {
    port = await moat.listen();
  } catch (err) {
    await moat.close().catch(() => undefined);
    logger.fatal({ err, event: 'start.failed' }, 'Moat could not listen');
    io.stderr.write(`moat: could not start: ${(err as Error).message}\n`);
    return 1;
  }
  const embedded = moat.storage.kind.durable === 'pglite' || moat.storage.kind.shortLived === 'memory';
  logger.info(
    {
      event: 'start',
      mode: config.mode,
      issuer: config.issuer,
      port,
      config: source,
      storage: moat.storage.kind,
    },
    'Moat started',
  );
  const lines = [
    `Moat ${config.mode} listening on port ${port} — issuer ${config.issuer}`,
    `configuration: ${source}`,
    ...(moat.adminPort === undefined
      ? []
      : [
          `admin listener (Prometheus metrics at /metrics): ${config.admin.tls === undefined ? 'http' : 'https'}://${config.admin.host}:${moat.adminPort}${
            config.admin.tokenFile === undefined ? '' : `, bearer token in ${config.admin.tokenFile}`
          }`,
        ]),
    `storage: ${moat.storage.kind.durable} + ${moat.storage.kind.shortLived}${
      embedded
        ? ` (embedded default under ${config.dataDir}: single instance, for the sandbox only; set storage.postgresUrl and storage.redisUrl for production)`
        : ''
    }`,
  ];
  if (config.mode === 'sandbox') {
    lines.push(
      `sandbox material: ${config.dataDir}/sandbox (trust server-ca.pem to reach the server)`,
      'sandbox customers (username / password / TOTP secret for the one-time code: RFC 6238, SHA-1, 6 digits, 30 s):',
      ...SANDBOX_CUSTOMERS.map((c) => `  ${c.username} / ${c.password} / ${c.totpSecret}  (${c.name})`),
      'issue TPP credentials: npm run moat -- sandbox tpp --name "My Fintech" --out ./my-fintech',
      ...(config.portal.enabled ? [`or in the browser, with your calls explained: ${config.issuer}/portal`] : []),
      `customers' consent dashboard: ${config.issuer}/account`,
    );
  }
  // In a cluster the primary has said where Moat listens; each worker says only that it is up.
  if (cluster.isWorker) io.stdout.write(`worker ${process.pid} listening on port ${port}\n`);
  else io.stdout.write(`${lines.join('\n')}\n`);

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string) => {
      // A terminal's Ctrl-C reaches a cluster worker twice: from the terminal and from the primary.
      if (stopping) return;
      stopping = true;
      logger.info({ event: 'stop', signal }, 'draining and stopping');
      const timer = setTimeout(() => {
        const ended = moat.closeConnections();
        // Said only when connections were left: a stop slowed by storage or the audit log closes none.
        if (ended > 0)
          logger.warn(
            { event: 'stop.deadline', connections: ended },
            `${ended} connection(s) still open after ${DRAIN_TIMEOUT_MS / 1000} s of draining: closed`,
          );
      }, DRAIN_TIMEOUT_MS);
      timer.unref();
      moat.close().then(
        () => {
          // A worker's IPC channel to the primary would keep it alive after everything else closed.
          cluster.worker?.disconnect();
          resolveExit(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          resolveExit(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/**
 * Keys, cookie secrets and sandbox material every worker must share, created once by the primary so
 * that workers starting at the same instant never generate two different sets.
 */
async function prepareSharedMaterial(config: MoatConfig): Promise<void> {
  if (config.mode === 'sandbox') await ensureSandboxMaterial(config.dataDir);
  // An HSM on a schedule (keys.rotation.every): the first instance adopts or makes the keys, under the database's lock.
  if (config.keys.source === 'pkcs11' && !lifecycleInDatabase(config)) {
    const token = await openPkcs11Token(config.keys.pkcs11!);
    try {
      await loadOrCreateHsmKeys(token, config.keys.algorithms);
    } finally {
      token.close();
    }
  } else if (config.keys.source === 'file') {
    await loadOrCreateSigningKeys(config.keys.dir, config.keys.algorithms);
  }
  loadOrCreateSecrets(config.keys.dir);
}

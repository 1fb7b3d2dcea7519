import { SANDBOX_CUSTOMERS } from '../customers/sql-customer-directory.ts';
import { createLogger } from '../observability/logger.ts';
import { createMoatServer } from '../server.ts';
import type { CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

/** How long a graceful shutdown waits for in-flight requests before closing anyway. */
const DRAIN_TIMEOUT_MS = 10_000;

/** `moat start` (and `npm start`): runs the server until SIGINT/SIGTERM, then drains and stops. */
export async function startCommand(args: string[], io: CliIo): Promise<number> {
  const result = loadConfigOrReport(args, io);
  if ('exitCode' in result) return result.exitCode;
  const { config, source } = result.loaded;
  const logger = createLogger(config.logging.level);
  let moat;
  try {
    moat = await createMoatServer(config, logger);
  } catch (err) {
    logger.fatal({ err, event: 'start.failed' }, 'Moat could not start');
    io.stderr.write(`moat: could not start: ${(err as Error).message}\n`);
    return 1;
  }
  const port = await moat.listen();
  const embedded = moat.storage.kind.durable === 'pglite' || moat.storage.kind.shortLived === 'memory';
  logger.info({
    event: 'start', mode: config.mode, issuer: config.issuer, port, config: source, storage: moat.storage.kind,
  }, 'Moat started');
  const lines = [
    `Moat ${config.mode} listening on port ${port} — issuer ${config.issuer}`,
    `configuration: ${source}`,
    ...(moat.adminPort === undefined ? [] : [`admin listener (Prometheus metrics at /metrics): http://${config.admin.host}:${moat.adminPort}`]),
    `storage: ${moat.storage.kind.durable} + ${moat.storage.kind.shortLived}${embedded
      ? ` (embedded default under ${config.dataDir}: single instance, for the sandbox only; set storage.postgresUrl and storage.redisUrl for production)`
      : ''}`,
  ];
  if (config.mode === 'sandbox') {
    lines.push(
      `sandbox material: ${config.dataDir}/sandbox (trust server-ca.pem to reach the server)`,
      'sandbox customers (username / password):',
      ...SANDBOX_CUSTOMERS.map((c) => `  ${c.username} / ${c.password}  (${c.name})`),
      'issue TPP credentials: npm run moat -- sandbox tpp --name "My Fintech" --out ./my-fintech',
      `customers' consent dashboard: ${config.issuer}/account`,
    );
  }
  io.stdout.write(`${lines.join('\n')}\n`);

  return new Promise<number>((resolveExit) => {
    const stop = (signal: string) => {
      logger.info({ event: 'stop', signal }, 'draining and stopping');
      const timer = setTimeout(() => moat.server.closeAllConnections(), DRAIN_TIMEOUT_MS);
      timer.unref();
      moat.close().then(() => resolveExit(0), (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        resolveExit(1);
      });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

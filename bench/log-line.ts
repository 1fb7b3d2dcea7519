import { openSync } from 'node:fs';
import { pino } from 'pino';
import { createLogDestination, createLogger } from '../src/observability/logger.ts';
import { requestContext } from '../src/observability/request-context.ts';

/*
 * CPU per access-log line: Moat's logger (allowlist, censoring, the request's ids) against a bare
 * pino with the same timestamp, both into /dev/null through Moat's batched destination. Every
 * request Moat serves writes one such line. `node bench/log-line.ts` (Node 24).
 */

const LINES = 200_000;
const destination = createLogDestination(openSync('/dev/null', 'w'));
const loggers = {
  moat: createLogger('info', destination),
  'bare pino': pino({ level: 'info', base: { service: 'moat' }, timestamp: pino.stdTimeFunctions.isoTime }, destination),
};
const context = { requestId: 'b6a1c2d4-9f7e-4c1a-8d2b-3e4f5a6b7c8d', interactionId: 'c6a1c2d4-9f7e-4c1a-8d2b-3e4f5a6b7c8d', clientId: 'G8P3Uq7OpedAcr55y' };
const line = { event: 'request', method: 'POST', path: '/token', status: 200, durationMs: 1.234567, clientId: context.clientId, outcome: 'ok' };

/** µs of process CPU per line, over LINES lines. */
function cpuPerLine(logger: pino.Logger): number {
  const before = process.cpuUsage();
  for (let i = 0; i < LINES; i++) requestContext.run(context, () => logger.info(line, 'request'));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / LINES;
}

for (const [name, logger] of Object.entries(loggers)) {
  cpuPerLine(logger); // warm-up: JIT
  const runs = [cpuPerLine(logger), cpuPerLine(logger), cpuPerLine(logger)];
  console.log(`${name.padEnd(10)} µs CPU per access-log line: ${runs.map((r) => r.toFixed(2)).join(', ')}`);
}

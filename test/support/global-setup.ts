import { mkdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { startRunScratch } from './scratch.ts';
import { privateSoftHsmConfig } from './softhsm.ts';

/*
 * Decides once per `npm test` which backends the integration tests use. On a machine with Postgres
 * and Redis (CI, a developer's laptop) everything runs against them; on a fresh machine without
 * them the suite runs on the embedded default and says so. CI sets TEST_MOAT_REQUIRE_SERVICES=1 so
 * a missing service fails the run instead of quietly skipping.
 */
function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
  });
}

export default async function globalSetup(): Promise<void> {
  // Throwaway files in RAM where the machine has a tmpfs (scratch.ts says why); the workers, and
  // everything they start, inherit TMPDIR.
  const scratch = startRunScratch();
  process.env.TEST_MOAT_SCRATCH_ROOT = scratch.root;
  process.env.TEST_MOAT_RUN_DIR = scratch.runDir;
  process.env.TMPDIR = scratch.runDir;
  // Every Moat a test starts writes its log lines here too; global-teardown.ts searches them.
  const logDir = join(process.cwd(), 'test-output', 'logs', new Date().toISOString().replace(/[:.]/g, '-'));
  mkdirSync(logDir, { recursive: true });
  process.env.TEST_MOAT_LOG_DIR = logDir;
  // The HSM tests' SoftHSM: a configuration and token directory of this run's own (softhsm.ts).
  const softHsm = privateSoftHsmConfig();
  process.env.SOFTHSM2_CONF = softHsm.conf;
  process.env.TEST_MOAT_SOFTHSM_ROOT = softHsm.root;
  if (process.env.TEST_MOAT_EMBEDDED_ONLY === '1') {
    process.stdout.write('\nmoat tests: embedded default only (PGlite + in-process store)\n');
    return;
  }
  const pg = process.env.TEST_MOAT_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const redis = process.env.TEST_MOAT_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const [pgUp, redisUp] = await Promise.all([reachable(pg), reachable(redis)]);
  if (pgUp && redisUp) {
    process.stdout.write('\nmoat tests: real Postgres and Redis, plus the embedded default where a test names it\n');
    return;
  }
  const missing = [pgUp ? undefined : `Postgres (${new URL(pg).host})`, redisUp ? undefined : `Redis (${new URL(redis).host})`].filter(Boolean).join(' and ');
  if (process.env.TEST_MOAT_REQUIRE_SERVICES === '1') {
    throw new Error(`TEST_MOAT_REQUIRE_SERVICES=1 but ${missing} is not reachable`);
  }
  process.stdout.write(
    `\nmoat tests: ${missing} not reachable — running on the embedded default only (set TEST_MOAT_POSTGRES_URL / TEST_MOAT_REDIS_URL to point at yours)\n`,
  );
  process.env.TEST_MOAT_EMBEDDED_ONLY = '1';
}

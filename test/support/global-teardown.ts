import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { secretsInLogLine } from './log-secrets.ts';

/*
 * After the whole run: every log line any test's Moat wrote (test/support/moat-harness.ts keeps
 * them in TEST_MOAT_LOG_DIR) is searched for what must never be logged (log-secrets.ts): tokens,
 * keys, passwords, cookies, codes, and an error's SQL parameters or row data. One hit fails the
 * run, naming the file and line.
 */
export default async function globalTeardown(): Promise<void> {
  const softHsmRoot = process.env.TEST_MOAT_SOFTHSM_ROOT;
  if (softHsmRoot !== undefined) rmSync(softHsmRoot, { recursive: true, force: true });
  // The run's scratch (scratch.ts), with whatever a failed test did not clean up.
  const runDir = process.env.TEST_MOAT_RUN_DIR;
  if (runDir !== undefined) rmSync(runDir, { recursive: true, force: true });
  const dir = process.env.TEST_MOAT_LOG_DIR;
  if (dir === undefined || !existsSync(dir)) return;
  let lines = 0;
  const hits: string[] = [];
  for (const file of readdirSync(dir)) {
    for (const [i, line] of readFileSync(join(dir, file), 'utf8').split('\n').entries()) {
      if (line === '') continue;
      lines += 1;
      for (const what of secretsInLogLine(line)) {
        if (hits.length < 20) hits.push(`${file}:${i + 1}: ${what}: ${line.slice(0, 300)}`);
      }
    }
  }
  if (hits.length > 0) throw new Error(`secrets in the logs of this test run:\n${hits.join('\n')}`);
  process.stdout.write(
    `moat tests: ${lines} log lines of this run searched for tokens, keys, passwords, cookies, codes and errors' SQL data: none found (${dir})\n`,
  );
}

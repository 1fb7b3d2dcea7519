import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createLogDestination, createLogger, LOG_BATCH_BYTES, LOG_FLUSH_MS } from '../../src/observability/logger.ts';

/*
 * Log lines are written in batches (issue 20: one write per access-log line was 6.5 % of Moat's CPU
 * on introspection). A batch that does not fill must still reach the operator, and nothing waiting
 * in it may be lost when the process ends.
 */

const run = promisify(execFile);
const LOGGER = resolve(import.meta.dirname, '../../src/observability/logger.ts');

describe('the batched log destination', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'moat-log-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a lone line far smaller than a batch within the flush interval', async () => {
    const file = join(dir, 'moat.log');
    const destination = createLogDestination(file);
    const logger = createLogger('info', destination);
    logger.info({ event: 'lone.line' }, 'a quiet server');
    expect(JSON.stringify({ event: 'lone.line' }).length).toBeLessThan(LOG_BATCH_BYTES);

    // Four flush intervals: the line is there once one has passed (polling, not a fixed sleep).
    const deadline = Date.now() + 4 * LOG_FLUSH_MS;
    let text = '';
    while (Date.now() < deadline && !text.includes('lone.line')) {
      await new Promise((r) => setTimeout(r, 25));
      text = readFileSync(file, 'utf8');
    }
    expect(text).toContain('"event":"lone.line"');
    (destination as unknown as { end(): void }).end();
  });

  it('writes the lines still waiting in a batch when the process exits', async () => {
    const file = join(dir, 'exit.log');
    const script = [
      `import { openSync } from 'node:fs';`,
      `import { createLogDestination, createLogger } from ${JSON.stringify(LOGGER)};`,
      // A descriptor, as `moat start` gives standard output (a path is opened asynchronously).
      `const logger = createLogger('info', createLogDestination(openSync(${JSON.stringify(file)}, 'w')));`,
      `for (let i = 0; i < 3; i++) logger.info({ event: 'before.exit', status: i }, 'last words');`,
      'process.exit(0);',
    ].join('\n');
    await run(process.execPath, ['--input-type=module', '-e', script]);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { status: number }).status)).toEqual([0, 1, 2]);
  });
});

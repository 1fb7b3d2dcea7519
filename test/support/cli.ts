import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli } from '../../src/cli/main.ts';

/** Runs `moat …` in-process (in a fresh working directory unless given one), capturing what it prints. */
export async function runMoat(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; out: string; err: string; cwd: string }> {
  const cwd = options.cwd ?? mkdtempSync(join(tmpdir(), 'moat-cli-'));
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const code = await runCli(args, { stdout, stderr, env: options.env ?? {}, cwd });
  return { code, out, err, cwd };
}

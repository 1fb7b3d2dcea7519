import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.ts';
import type { CliIo } from './io.ts';

/** Parses `--config FILE` (plus any extra options) and loads the configuration, reporting errors. */
export function loadConfigOrReport(
  args: string[],
  io: CliIo,
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {},
): { loaded: LoadedConfig; values: Record<string, unknown> } | { exitCode: number } {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args, options: { config: { type: 'string' }, ...options }, strict: true, allowPositionals: false }));
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n`);
    return { exitCode: 2 };
  }
  try {
    const loaded = loadConfig({ ...(typeof values.config === 'string' ? { file: values.config } : {}), env: io.env, cwd: io.cwd });
    return { loaded, values };
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`moat: ${err.message}\n`);
      return { exitCode: 1 };
    }
    throw err;
  }
}

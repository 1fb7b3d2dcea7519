import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.ts';
import type { CliIo } from './io.ts';

/** The options every command that reads the configuration takes (`parseArgs` form). */
export const CONFIG_OPTIONS = {
  config: { type: 'string' as const },
  /** The server's data directory, for a command run from somewhere else than the server. */
  'data-dir': { type: 'string' as const },
};

/** `--config` and `--data-dir` as parsed by a command that parses its own arguments, to hand on. */
export function configArgs(values: { config?: string; 'data-dir'?: string }): string[] {
  return [...(values.config === undefined ? [] : ['--config', values.config]), ...(values['data-dir'] === undefined ? [] : ['--data-dir', values['data-dir']])];
}

/** Parses `--config FILE` and `--data-dir DIR` (plus any extra options) and loads the configuration, reporting errors. */
export function loadConfigOrReport(
  args: string[],
  io: CliIo,
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {},
): { loaded: LoadedConfig; values: Record<string, unknown> } | { exitCode: number } {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args, options: { ...CONFIG_OPTIONS, ...options }, strict: true, allowPositionals: false }));
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n`);
    return { exitCode: 2 };
  }
  try {
    const loaded = loadConfig({
      ...(typeof values.config === 'string' ? { file: values.config } : {}),
      // Relative to where the command runs, like any path given on a command line.
      ...(typeof values['data-dir'] === 'string' ? { dataDir: resolve(io.cwd, values['data-dir']) } : {}),
      env: io.env,
      cwd: io.cwd,
    });
    return { loaded, values };
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`moat: ${err.message}\n`);
      return { exitCode: 1 };
    }
    throw err;
  }
}

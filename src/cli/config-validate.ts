import type { CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage: moat config validate [--config FILE]
  validates the configuration (moat.yaml, or --config / MOAT_CONFIG, plus MOAT_* overrides) and exits:
  0 when it is valid, 1 naming every bad key
`;

/** `moat config validate`: exits non-zero with the bad keys named, for a bank's CI. */
export async function configValidateCommand(args: string[], io: CliIo): Promise<number> {
  const result = loadConfigOrReport(args, io);
  if ('exitCode' in result) return result.exitCode;
  const { config } = result.loaded;
  io.stdout.write(`configuration valid (${result.loaded.source}): mode ${config.mode}, issuer ${config.issuer}\n`);
  return 0;
}

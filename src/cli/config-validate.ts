import type { MoatConfig } from '../config/schema.ts';
import { describeHsmToken } from '../keys/hsm-signing-keys.ts';
import type { CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage: moat config validate [--connect] [--config FILE]
  validates the configuration (moat.yaml, or --config / MOAT_CONFIG, plus MOAT_* overrides) and exits:
  0 when it is valid, 1 naming every bad key
  --connect   also reaches every bank system the configuration names (the HSM, …) and says what it found
`;

/**
 * One bank system the configuration connects Moat to, checked by `--connect`: `applies` says
 * whether the configuration uses it; `check` reaches it and says what it found, or throws with the
 * configuration key to fix first in its message. Each source adds its check to CONNECT_CHECKS.
 */
export interface ConnectCheck {
  /** The configuration key of the source, printed on its line. */
  key: string;
  applies(config: MoatConfig): boolean;
  check(config: MoatConfig): Promise<string>;
}

export const CONNECT_CHECKS: readonly ConnectCheck[] = [
  // The token is present, the PIN logs in, and Moat's keys are listed (none generated).
  { key: 'keys.pkcs11', applies: (c) => c.keys.source === 'pkcs11', check: (c) => describeHsmToken(c.keys.pkcs11!) },
];

/** `moat config validate [--connect]`: exits non-zero with the bad keys named, for a bank's CI. */
export async function configValidateCommand(args: string[], io: CliIo): Promise<number> {
  const result = loadConfigOrReport(args, io, { connect: { type: 'boolean' } });
  if ('exitCode' in result) return result.exitCode;
  const { config } = result.loaded;
  io.stdout.write(`configuration valid (${result.loaded.source}): mode ${config.mode}, issuer ${config.issuer}\n`);
  if (result.values.connect !== true) return 0;
  const checks = CONNECT_CHECKS.filter((c) => c.applies(config));
  if (checks.length === 0) io.stdout.write('--connect: the configuration names no bank system to reach\n');
  let failed = 0;
  for (const { key, check } of checks) {
    try {
      io.stdout.write(`connect ${key}: ok — ${await check(config)}\n`);
    } catch (err) {
      // Each source's error names the key to fix (HsmUnavailableError: keys.pkcs11.pin, …).
      if (!(err instanceof Error)) throw err;
      failed += 1;
      io.stdout.write(`connect ${key}: FAILED — ${err.message}\n`);
    }
  }
  return failed === 0 ? 0 : 1;
}

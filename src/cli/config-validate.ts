import type { MoatConfig } from '../config/schema.ts';
import { FederationFailure } from '../federation/federation-failure.ts';
import { createUpstreamIdp } from '../federation/upstream-idp.ts';
import type { CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage: moat config validate [--config FILE] [--connect]
  validates the configuration (moat.yaml, or --config / MOAT_CONFIG, plus MOAT_* overrides) and exits:
  0 when it is valid, 1 naming every bad key
  --connect  also reaches every system of the bank the configuration names (its identity
             provider, …) and exits 1 naming the key of each that does not answer as expected
`;

/**
 * A system of the bank Moat connects to, checked by `--connect`: one entry per source in moat.yaml.
 * `check` resolves with a line saying what answered, or rejects with what did not.
 */
export interface ReachabilityCheck {
  /** The configuration key of the source (named in the report). */
  key: string;
  applies(config: MoatConfig): boolean;
  check(config: MoatConfig): Promise<string>;
}

export const REACHABILITY_CHECKS: ReachabilityCheck[] = [
  {
    // customers.source: oidc — the bank's OpenID Provider: its metadata, read as a sign-in would.
    key: 'customers.oidc',
    applies: (config) => config.customers.source === 'oidc' && config.customers.oidc !== undefined,
    async check(config) {
      const idp = await createUpstreamIdp(config.customers.oidc!, config.issuer);
      try {
        const offered = await idp.probe();
        return `${offered.issuer} answers: PAR ${offered.par ? 'offered (used)' : 'not offered'}, RFC 9207 iss ${offered.issParameter ? 'sent' : 'not sent'}`;
      } catch (err) {
        if (err instanceof FederationFailure) throw new Error(`${config.customers.oidc!.issuer}: ${err.kind} (${err.message})`);
        throw err;
      } finally {
        await idp.close();
      }
    },
  },
];

/** `moat config validate`: exits non-zero with the bad keys named, for a bank's CI. */
export async function configValidateCommand(args: string[], io: CliIo): Promise<number> {
  const result = loadConfigOrReport(args, io, { connect: { type: 'boolean' } });
  if ('exitCode' in result) return result.exitCode;
  const { config } = result.loaded;
  io.stdout.write(`configuration valid (${result.loaded.source}): mode ${config.mode}, issuer ${config.issuer}\n`);
  if (result.values.connect !== true) return 0;
  let failed = 0;
  const checks = REACHABILITY_CHECKS.filter((c) => c.applies(config));
  if (checks.length === 0) io.stdout.write('nothing to connect to: no bank system is configured\n');
  for (const reachability of checks) {
    try {
      io.stdout.write(`${reachability.key}: ok — ${await reachability.check(config)}\n`);
    } catch (err) {
      failed += 1;
      io.stderr.write(`moat: ${reachability.key}: not reachable — ${(err as Error).message}\n`);
    }
  }
  return failed === 0 ? 0 : 1;
}

import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { accountSourceOf, createConfiguredAccountService } from '../accounts/account-source.ts';
import type { MoatConfig } from '../config/schema.ts';
import { describeHsmToken } from '../keys/hsm-signing-keys.ts';
import { AccountsUnavailable } from '../customers/account-directory.ts';
import { FederationFailure } from '../federation/federation-failure.ts';
import { createUpstreamIdp } from '../federation/upstream-idp.ts';
import { createLogger } from '../observability/logger.ts';
import { EXIT_FAILURE, EXIT_OK, type CliIo } from './io.ts';
import { configHash } from '../config/config-description.ts';
import { PRODUCTION_RULES, productionViolations } from '../config/production-rules.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';
import { ConfigError } from '../config/load.ts';
import { bankTextProblems } from '../interactions/views.ts';

export const USAGE = `usage: moat config validate [--config FILE] [--connect] [--production]
  validates the configuration (moat.yaml, or --config / MOAT_CONFIG, plus MOAT_* overrides) and exits:
  0 when it is valid, 1 naming every bad key
  --connect  also reaches each of the bank's systems the configuration names (the account service,
             the identity provider, the HSM, the CA's ACME directory, …)
             and exits 1 naming the key of each one that cannot be reached
  --production  also applies the production rules (mode production, revocation failing closed,
             operator authentication, no sandbox CA or directory; src/config/production-rules.ts)
             and exits 1 naming each rule broken
`;

/**
 * A reachability check of one source of the bank's. `run` resolves with what was reached, or throws
 * an Error whose message names the configuration key to look at; a source the configuration does
 * not use is not checked.
 */
export interface ReachabilityCheck {
  /** The configuration section it checks, as printed. */
  name: string;
  applies(config: MoatConfig): boolean;
  run(config: MoatConfig): Promise<string>;
}

/** Each source of the bank's that `--connect` reaches; every source adds its check here. */
export const REACHABILITY_CHECKS: readonly ReachabilityCheck[] = [
  {
    // The HSM: the token is present, the PIN logs in, Moat's keys are listed (none generated).
    name: 'keys.pkcs11',
    applies: (config) => config.keys.source === 'pkcs11',
    run: (config) => describeHsmToken(config.keys.pkcs11!),
  },
  {
    // One list request for a customer no bank has (the contract answers an empty list), without
    // retries: the handshake with Moat's client certificate, the service's certificate against
    // accounts.http.caFile, and an answer that keeps the contract.
    name: 'accounts',
    applies: (config) => accountSourceOf(config) === 'http',
    async run(config) {
      const http = config.accounts.http!;
      const client = createConfiguredAccountService({ ...http, retries: 0 }, { logger: createLogger('silent'), registry: new Registry(), cacheSeconds: 0 });
      try {
        await client.check();
        return `${http.url} reachable over mutual TLS, its answer keeps the contract`;
      } catch (err) {
        if (!(err instanceof AccountsUnavailable)) throw err;
        const cause = err.cause as { code?: string; message?: string } | undefined;
        const detail = cause === undefined ? '' : ` — ${cause.code ?? cause.message ?? ''}`;
        throw new Error(`accounts.http.url ${http.url}: ${err.message}${detail}`, { cause: err });
      } finally {
        client.close();
      }
    },
  },
  {
    // customers.source: oidc — the bank's OpenID Provider: its metadata read as a sign-in would
    // (over TLS trusting customers.oidc.caFile, with the client key or certificate loaded).
    name: 'customers.oidc',
    applies: (config) => config.customers.source === 'oidc' && config.customers.oidc !== undefined,
    async run(config) {
      const oidc = config.customers.oidc!;
      const idp = await createUpstreamIdp(oidc, config.issuer);
      try {
        const offered = await idp.probe();
        return `${offered.issuer} answers: PAR ${offered.par ? 'offered (used)' : 'not offered'}, RFC 9207 iss ${offered.issParameter ? 'sent' : 'not sent'}`;
      } catch (err) {
        if (err instanceof FederationFailure) throw new Error(`customers.oidc.issuer ${oidc.issuer}: ${err.kind} (${err.message})`, { cause: err });
        throw err;
      } finally {
        await idp.close();
      }
    },
  },
  {
    // acme: the CA's ACME directory read over TLS trusting acme.caFile, and whether it needs the
    // external account binding (RFC 8555 §7.3.4) the configuration gives or lacks. No order is placed.
    name: 'acme',
    applies: (config) => config.acme.enabled,
    async run(config) {
      const { directoryUrl, caFile, timeoutMs, externalAccountBinding } = config.acme;
      // acme-client is loaded only when acme is enabled (issue 20 §6).
      const { readAcmeDirectory } = await import('../acme/acme-issuer.ts');
      let directory: Awaited<ReturnType<typeof readAcmeDirectory>>;
      try {
        directory = await readAcmeDirectory({
          directoryUrl: directoryUrl!,
          timeoutMs,
          ...(caFile === undefined ? {} : { caPem: readFileSync(caFile, 'utf8') }),
        });
      } catch (err) {
        throw new Error(
          `acme.directoryUrl ${directoryUrl} (trusting ${caFile === undefined ? "the system's CAs" : `acme.caFile ${caFile}`}): ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (directory.externalAccountRequired && externalAccountBinding === undefined) {
        throw new Error(
          `acme.externalAccountBinding: ${directoryUrl} requires an external account binding (RFC 8555 §7.3.4); set the kid and hmacKey (or hmacKeyFile) the CA gave`,
        );
      }
      return `${directoryUrl} answers: external account binding ${directory.externalAccountRequired ? 'required (configured)' : 'not required'}`;
    },
  },
];

/** `moat config validate`: exits non-zero with the bad keys named, for a bank's CI. */
export async function configValidateCommand(args: string[], io: CliIo): Promise<number> {
  const result = loadConfigOrReport(args, io, { connect: { type: 'boolean' }, production: { type: 'boolean' } });
  if ('exitCode' in result) return result.exitCode;
  const { config } = result.loaded;
  // The bank's customer texts in languages the pages are in (interactions/views.ts).
  const textProblems = bankTextProblems(config);
  if (textProblems.length > 0) {
    io.stderr.write(`moat: ${new ConfigError(result.loaded.source, textProblems).message}\n`);
    return EXIT_FAILURE;
  }
  io.stdout.write(`configuration valid (${result.loaded.source}): mode ${config.mode}, issuer ${config.issuer}, hash ${configHash(config)}\n`);
  let failed = false;
  if (result.values.production === true) {
    const violations = productionViolations(config);
    for (const violation of violations) io.stderr.write(`moat: production rule ${violation}\n`);
    if (violations.length === 0) io.stdout.write(`production rules: all ${PRODUCTION_RULES.length} kept\n`);
    failed = violations.length > 0;
  }
  if (result.values.connect !== true) return failed ? EXIT_FAILURE : EXIT_OK;
  for (const check of REACHABILITY_CHECKS.filter((c) => c.applies(config))) {
    try {
      io.stdout.write(`${check.name}: ${await check.run(config)}\n`);
    } catch (err) {
      failed = true;
      io.stderr.write(`moat: ${check.name}: ${(err as Error).message}\n`);
    }
  }
  return failed ? EXIT_FAILURE : EXIT_OK;
}

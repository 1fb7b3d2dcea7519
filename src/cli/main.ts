import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { auditCommand, OPTIONS as AUDIT_OPTIONS, USAGE as AUDIT_USAGE } from './audit.ts';
import { certsCommand, OPTIONS as CERTS_OPTIONS, tppsCommand, USAGE as CERTS_USAGE } from './certs.ts';
import { configValidateCommand, USAGE as CONFIG_USAGE } from './config-validate.ts';
import { configPlanCommand, OPTIONS as CONFIG_PLAN_OPTIONS, USAGE as CONFIG_PLAN_USAGE } from './config-plan.ts';
import { diagnoseCommand, OPTIONS as DIAGNOSE_OPTIONS, USAGE as DIAGNOSE_USAGE } from './diagnose.ts';
import { EXIT_OK, EXIT_USAGE, escapingOutput, type CliIo } from './io.ts';
import { keysCommand, USAGE as KEYS_USAGE } from './keys.ts';
import { CONFIG_OPTIONS } from './load-config-or-report.ts';
import { migrateCommand, USAGE as MIGRATE_USAGE } from './migrate.ts';
import { OPTIONS as SANDBOX_DECIDE_OPTIONS, sandboxDecideCommand, USAGE as SANDBOX_DECIDE_USAGE } from './sandbox-decide.ts';
import { OPTIONS as SANDBOX_RENEW_OPTIONS, sandboxRenewCommand, USAGE as SANDBOX_RENEW_USAGE } from './sandbox-renew.ts';
import { OPTIONS as SANDBOX_REVOKE_OPTIONS, sandboxRevokeCommand, USAGE as SANDBOX_REVOKE_USAGE } from './sandbox-revoke.ts';
import { OPTIONS as SANDBOX_TPP_OPTIONS, sandboxTppCommand, USAGE as SANDBOX_TPP_USAGE } from './sandbox-tpp.ts';
import { startCommand, USAGE as START_USAGE } from './start.ts';
import { OPTIONS as THREATS_OPTIONS, threatsCommand, USAGE as THREATS_USAGE } from './threats.ts';

const USAGE = `usage: moat <command> [options]      (moat <command> --help for its options)

commands:
  start [--config FILE]                 run the server (what npm start does)
  migrate [--config FILE]               apply pending database migrations
  config validate [--config FILE] [--connect] [--production]
                                        validate the configuration and exit (for CI); --connect reaches the bank's systems
  config plan --against ADMIN_URL       what running the file would change on a running instance, key by key
  keys list [--config FILE]             list signing keys and their state
  keys rotate [--stage] [--config FILE] rotate the signing keys (the old ones stay published until their tokens expire)
  sandbox tpp --name NAME --out DIR     issue sandbox TPP credentials (certificate, keys, SSA)
  sandbox revoke --cert F --key F       have the sandbox CA revoke a sandbox certificate
  sandbox renew --credentials DIR       issue the next transport certificate of sandbox TPP credentials
  sandbox approve|deny --customer NAME  decide a decoupled (CIBA) request as the sandbox customer, with SCA
  certs list|show|revoke|expiring|unrenewed
                                        the TPP certificate registry (moat certs for details)
  tpps list                             TPP organisations, their clients and certificates
  audit verify | query [filters]        verify the audit log's hash chain; query it by TPP, customer, time
  threats flags|restrictions|quarantine|step-up|release
                                        threat detection, through the running server's admin API
  diagnose --issuer URL --cert F --key F  check a TPP's setup against a server, stopping at the first fault
                                        (or --credentials DIR; moat diagnose --help for the options)

certs, tpps, audit and threats talk to the running server's admin listener (audited as you):
  --admin-url URL                       default: the configured admin listener (https with admin.tls)
  --admin-cert F --admin-key F          your operator certificate, when the listener has admin.tls
  --admin-ca F                          the CA of the admin listener's own certificate
  --admin-token-file FILE               the admin token instead (default: admin.tokenFile; in the
                                        sandbox, admin.token in the server's data directory)
                                        (or MOAT_ADMIN_URL, _CERT, _KEY, _CA, _TOKEN_FILE)
  --direct                              certs, tpps, audit: work on the database directly (server stopped)

configuration: moat.yaml in the working directory, or --config / MOAT_CONFIG; MOAT_* environment
variables override single keys (MOAT_STORAGE__POSTGRES_URL sets storage.postgresUrl). Commands that
read the server's data directory (sandbox material, the embedded database, the sandbox's admin
token) take --data-dir DIR when run from another directory than the server (default: ./data).
`;

type Run = (args: string[], io: CliIo) => Promise<number>;

/** A command: its usage, and how it runs with the arguments after its name. */
interface Command {
  usage: string;
  run: Run;
  /** Subcommands with a usage of their own (the others share the command's). */
  subcommandUsage?: Record<string, string>;
  /** Every option it (any subcommand) takes, as parseArgs reads them: which ones take a value. */
  options: ParseArgsOptionsConfig;
  /**
   * Where an operand sits that may look like an option (a kid is base64url: it can start with "-",
   * and "-hX…" would read as -h): the index in the arguments after the command's name, never parsed
   * for options.
   */
  operandAt?: (args: string[]) => number | undefined;
}

/** A command made of subcommands, each with its own function; an unknown one gets the usage, exit 2. */
function group(usage: string, subcommands: Record<string, Run>): Run {
  return async (args, io) => {
    const [sub, ...rest] = args;
    const run = sub === undefined || !Object.hasOwn(subcommands, sub) ? undefined : subcommands[sub];
    if (run !== undefined) return run(rest, io);
    io.stderr.write(`moat: unknown command "${args.join(' ')}"\n\n${usage}`);
    return EXIT_USAGE;
  };
}

/** Every command of `moat`, by name; a `--help` or `-h` option in a command's arguments prints its usage. */
export const COMMANDS: Readonly<Record<string, Command>> = {
  start: { usage: START_USAGE, run: startCommand, options: CONFIG_OPTIONS },
  migrate: { usage: MIGRATE_USAGE, run: migrateCommand, options: CONFIG_OPTIONS },
  config: {
    usage: `${CONFIG_USAGE}\n${CONFIG_PLAN_USAGE}`,
    run: group(`${CONFIG_USAGE}\n${CONFIG_PLAN_USAGE}`, { validate: configValidateCommand, plan: configPlanCommand }),
    subcommandUsage: { validate: CONFIG_USAGE, plan: CONFIG_PLAN_USAGE },
    options: { ...CONFIG_OPTIONS, connect: { type: 'boolean' }, production: { type: 'boolean' }, ...CONFIG_PLAN_OPTIONS },
  },
  keys: {
    usage: KEYS_USAGE,
    run: keysCommand,
    options: { ...CONFIG_OPTIONS, stage: { type: 'boolean' } },
    operandAt: (args) => (args[0] === 'activate' || args[0] === 'retire' ? 1 : undefined),
  },
  sandbox: {
    usage: `${SANDBOX_TPP_USAGE}\n${SANDBOX_REVOKE_USAGE}\n${SANDBOX_RENEW_USAGE}\n${SANDBOX_DECIDE_USAGE}`,
    run: group(`${SANDBOX_TPP_USAGE}\n${SANDBOX_REVOKE_USAGE}\n${SANDBOX_RENEW_USAGE}\n${SANDBOX_DECIDE_USAGE}`, {
      tpp: sandboxTppCommand,
      revoke: sandboxRevokeCommand,
      renew: sandboxRenewCommand,
      approve: sandboxDecideCommand('approve'),
      deny: sandboxDecideCommand('deny'),
    }),
    subcommandUsage: {
      tpp: SANDBOX_TPP_USAGE,
      revoke: SANDBOX_REVOKE_USAGE,
      renew: SANDBOX_RENEW_USAGE,
      approve: SANDBOX_DECIDE_USAGE,
      deny: SANDBOX_DECIDE_USAGE,
    },
    options: { ...SANDBOX_TPP_OPTIONS, ...SANDBOX_REVOKE_OPTIONS, ...SANDBOX_RENEW_OPTIONS, ...SANDBOX_DECIDE_OPTIONS },
  },
  certs: {
    usage: CERTS_USAGE,
    run: certsCommand,
    options: CERTS_OPTIONS,
    // A thumbprint is 43 characters: a bare -h or --help there asks for help.
    operandAt: (args) => ((args[0] === 'show' || args[0] === 'revoke') && args[1] !== '-h' && args[1] !== '--help' ? 1 : undefined),
  },
  tpps: { usage: CERTS_USAGE, run: tppsCommand, options: CERTS_OPTIONS },
  audit: { usage: AUDIT_USAGE, run: auditCommand, options: AUDIT_OPTIONS },
  threats: { usage: THREATS_USAGE, run: threatsCommand, options: THREATS_OPTIONS },
  diagnose: { usage: DIAGNOSE_USAGE, run: diagnoseCommand, options: DIAGNOSE_OPTIONS },
};

/**
 * Whether the arguments ask for help: parseArgs, knowing which of the command's options take a
 * value, finds a `--help` or `-h` option — not a value (`--reason -h`), nor anything after `--`.
 * Not strict: an unknown option is the command's to refuse, after this.
 */
function asksForHelp(args: string[], options: ParseArgsOptionsConfig): boolean {
  const { tokens } = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: false, allowPositionals: true, tokens: true });
  return tokens.some((token) => token.kind === 'option' && token.name === 'help');
}

export async function runCli(argv: string[], given: CliIo): Promise<number> {
  // Every word the CLI prints passes here: no control character from a TPP's name, a server's answer
  // or a file reaches the operator's terminal unescaped.
  const io: CliIo = { ...given, stdout: escapingOutput(given.stdout), stderr: escapingOutput(given.stderr) };
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    io.stdout.write(USAGE);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name]! : undefined;
  if (command === undefined) {
    io.stderr.write(`moat: unknown command "${argv.join(' ')}"\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  // Help before anything runs: `moat start --help` must not start a server.
  const operand = command.operandAt?.(rest);
  if (asksForHelp(operand === undefined ? rest : rest.filter((_, i) => i !== operand), command.options)) {
    const sub = rest[0];
    io.stdout.write(
      sub !== undefined && command.subcommandUsage !== undefined && Object.hasOwn(command.subcommandUsage, sub) ? command.subcommandUsage[sub]! : command.usage,
    );
    return EXIT_OK;
  }
  return command.run(rest, io);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() });
}

import { fileURLToPath } from 'node:url';
import { auditCommand } from './audit.ts';
import { certsCommand, tppsCommand } from './certs.ts';
import { configValidateCommand } from './config-validate.ts';
import { diagnoseCommand } from './diagnose.ts';
import { EXIT_USAGE, escapingOutput, type CliIo } from './io.ts';
import { keysCommand } from './keys.ts';
import { migrateCommand } from './migrate.ts';
import { sandboxRevokeCommand } from './sandbox-revoke.ts';
import { sandboxTppCommand } from './sandbox-tpp.ts';
import { startCommand } from './start.ts';
import { threatsCommand } from './threats.ts';

const USAGE = `usage: moat <command> [options]

commands:
  start [--config FILE]                 run the server (what npm start does)
  migrate [--config FILE]               apply pending database migrations
  config validate [--config FILE]       validate the configuration and exit (for CI)
  keys list [--config FILE]             list signing keys and their state
  keys rotate [--stage] [--config FILE] rotate the signing keys (the old ones stay published until their tokens expire)
  sandbox tpp --name NAME --out DIR     issue sandbox TPP credentials (certificate, keys, SSA)
  sandbox revoke --cert F --key F       have the sandbox CA revoke a sandbox certificate
  certs list|show|revoke|expiring       the TPP certificate registry (moat certs for details)
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
  --admin-token-file FILE               the admin token instead (default: admin.tokenFile)
                                        (or MOAT_ADMIN_URL, _CERT, _KEY, _CA, _TOKEN_FILE)
  --direct                              certs, tpps, audit: work on the database directly (server stopped)

configuration: moat.yaml in the working directory, or --config / MOAT_CONFIG; MOAT_* environment
variables override single keys (MOAT_STORAGE__POSTGRES_URL sets storage.postgresUrl).
`;

export async function runCli(argv: string[], given: CliIo): Promise<number> {
  // Every word the CLI prints passes here: no control character from a TPP's name, a server's answer
  // or a file reaches the operator's terminal unescaped.
  const io: CliIo = { ...given, stdout: escapingOutput(given.stdout), stderr: escapingOutput(given.stderr) };
  const [command, ...rest] = argv;
  switch (command) {
    case 'start': return startCommand(rest, io);
    case 'migrate': return migrateCommand(rest, io);
    case 'config':
      if (rest[0] === 'validate') return configValidateCommand(rest.slice(1), io);
      break;
    case 'keys': return keysCommand(rest, io);
    case 'certs': return certsCommand(rest, io);
    case 'tpps': return tppsCommand(rest, io);
    case 'audit': return auditCommand(rest, io);
    case 'threats': return threatsCommand(rest, io);
    case 'diagnose': return diagnoseCommand(rest, io);
    case 'sandbox':
      if (rest[0] === 'tpp') return sandboxTppCommand(rest.slice(1), io);
      if (rest[0] === 'revoke') return sandboxRevokeCommand(rest.slice(1), io);
      break;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(USAGE);
      return command === undefined ? EXIT_USAGE : 0;
    default:
      break;
  }
  io.stderr.write(`moat: unknown command "${argv.join(' ')}"\n\n${USAGE}`);
  return EXIT_USAGE;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() });
}

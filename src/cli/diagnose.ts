import { parseArgs } from 'node:util';
import { diagnose } from './diagnose/diagnose.ts';
import { resolveInputs } from './diagnose/inputs.ts';
import { jsonReport, textReport } from './diagnose/report.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIo } from './io.ts';

export const USAGE = `usage: moat diagnose --issuer URL --cert PEM --key PEM [--ca PEM] [options]
       moat diagnose --credentials DIR [--issuer URL] [options]

  --issuer URL              the server's issuer identifier (https://localhost:8443 for the sandbox)
  --cert PEM, --key PEM     the transport certificate (intermediates after it) and its private key
  --ca PEM                  the CA of the server's certificate (else the system's CAs)
  --credentials DIR         what \`moat sandbox tpp --out DIR\` wrote: transport.pem, transport.key,
                            server-ca.pem, ssa.jwt, signing.jwks.json, registration.json, tpp.json
  --client-id ID            dry-run client authentication, PAR and token binding as this client
  --registration-token T    RFC 7592 registration access token: reads the registered subject DN
  --ssa FILE                the software statement to check
  --signing-key FILE        the private signing key (JWKS or JWK)
  --redirect-uri URL        the redirect URI for the PAR (default: the first in registration.json)
  --scope SCOPE             the scope for the PAR and client_credentials (default: the registered one)
  --json                    machine-readable results

exit status: 0 every check passed, 1 a check failed (the first fault stops the run), 2 bad usage
`;

export const OPTIONS = {
  issuer: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  ca: { type: 'string' },
  'client-id': { type: 'string' },
  'signing-key': { type: 'string' },
  ssa: { type: 'string' },
  'redirect-uri': { type: 'string' },
  scope: { type: 'string' },
  credentials: { type: 'string' },
  'registration-token': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * `--client-id -x1…` as `--client-id=-x1…`: client ids and registration access tokens are
 * base64url and may begin with "-", which parseArgs would otherwise take for an option. A value is
 * anything after a string option that is not itself one of the options.
 */
function valuesMayStartWithDash(args: string[]): string[] {
  const isOption = (arg: string) => arg === '-h' || (arg.startsWith('--') && Object.hasOwn(OPTIONS, arg.slice(2).split('=')[0]!));
  const out: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    const next = args[i + 1];
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    if (
      name !== undefined &&
      Object.hasOwn(OPTIONS, name) &&
      OPTIONS[name as keyof typeof OPTIONS].type === 'string' &&
      next !== undefined &&
      next.startsWith('-') &&
      !isOption(next)
    ) {
      out.push(`${arg}=${next}`);
      i += 1;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/**
 * `moat diagnose`: run by a TPP developer with its own credentials against a server; walks the
 * whole path and stops at the first fault, naming the exact cause and its fix.
 */
export async function diagnoseCommand(args: string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: valuesMayStartWithDash(args), options: OPTIONS, strict: true }));
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (values.help === true) {
    io.stdout.write(USAGE);
    return EXIT_OK;
  }
  const { json, help: _help, ...flags } = values;
  const resolved = resolveInputs(flags, io.cwd);
  if ('usage' in resolved) {
    io.stderr.write(`moat: ${resolved.usage}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const result = await diagnose(resolved.inputs);
  io.stdout.write(json === true ? jsonReport(result) : textReport(result));
  return result.ok ? EXIT_OK : EXIT_FAILURE;
}

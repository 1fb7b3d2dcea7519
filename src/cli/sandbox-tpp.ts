import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureSandboxMaterial, sandboxMaterialExists } from '../sandbox/sandbox-material.ts';
import { issueSandboxTpp, sandboxTppNameProblem, writeSandboxTpp } from '../sandbox/tpp-credentials.ts';
import { sandboxRevocationPointers } from '../sandbox/revocation-services.ts';
import type { CliIo } from './io.ts';
import { configArgs, loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage: moat sandbox tpp --name NAME --out DIR [--roles AISP,PISP,CBPII] [--redirect-uri URL ...] [--json]
  writes a sandbox TPP's certificate, keys and software statement (no running server needed)
options: --config FILE
  --data-dir DIR    the server's data directory (default: dataDir, ./data): the sandbox CA and directory key
                    that issue the credentials, which the server must trust
`;
const KNOWN_ROLES = ['AISP', 'PISP', 'CBPII'];

/** Every option of `moat sandbox tpp`, in parseArgs form. */
export const OPTIONS = {
  name: { type: 'string' },
  out: { type: 'string' },
  roles: { type: 'string' },
  'redirect-uri': { type: 'string', multiple: true },
  json: { type: 'boolean' },
  config: { type: 'string' },
  'data-dir': { type: 'string' },
} as const;

/**
 * `moat sandbox tpp`: writes a sandbox TPP's credentials. It needs no running server and touches no
 * database: only the sandbox CA and directory key under dataDir (created if this is the first use).
 */
export async function sandboxTppCommand(args: string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: OPTIONS, strict: true }));
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.name === undefined || values.name.trim() === '' || values.out === undefined) {
    io.stderr.write(`moat: --name and --out are required\n${USAGE}`);
    return 2;
  }
  // The portal's rule: the name goes into the certificate, the SSA and every operator's view of the TPP.
  const nameProblem = sandboxTppNameProblem(values.name.trim());
  if (nameProblem !== undefined) {
    io.stderr.write(`moat: --name: ${nameProblem}\n`);
    return 2;
  }
  const roles =
    values.roles === undefined
      ? ['AISP', 'PISP']
      : values.roles
          .split(',')
          .map((r) => r.trim().toUpperCase())
          .filter(Boolean);
  const unknown = roles.filter((r) => !KNOWN_ROLES.includes(r));
  if (unknown.length > 0 || roles.length === 0) {
    io.stderr.write(`moat: unknown role ${unknown.join(', ') || '(none)'}; roles are ${KNOWN_ROLES.join(', ')}\n`);
    return 2;
  }
  for (const uri of values['redirect-uri'] ?? []) {
    if (!URL.canParse(uri) || !uri.startsWith('https://')) {
      io.stderr.write(`moat: --redirect-uri ${uri} must be an https URL (FAPI 2.0 SP §5.3.2.2)\n`);
      return 2;
    }
  }
  const loaded = loadConfigOrReport(configArgs(values), io);
  if ('exitCode' in loaded) return loaded.exitCode;
  const { config } = loaded.loaded;
  if (config.mode !== 'sandbox') {
    io.stderr.write('moat: sandbox credentials exist only in sandbox mode (this configuration is mode: production)\n');
    return 1;
  }
  // Credentials from a sandbox CA the server does not know are refused by it: say where they come from.
  if (!sandboxMaterialExists(config.dataDir)) {
    io.stderr.write(
      `moat: no sandbox under ${config.dataDir} yet: creating its CA and directory key there. A server started from ` +
        'another directory will not trust these credentials: pass its data directory with --data-dir DIR.\n',
    );
  }
  const material = await ensureSandboxMaterial(config.dataDir);
  const tpp = await issueSandboxTpp(material, {
    name: values.name.trim(),
    issuer: config.issuer,
    roles,
    // eIDAS style, with the sandbox CA's OCSP responder and CRL: every lifecycle path can be rehearsed.
    eidas: true,
    ...sandboxRevocationPointers(config.issuer),
    ...(values['redirect-uri'] === undefined ? {} : { redirectUris: values['redirect-uri'] }),
  });
  const summary = writeSandboxTpp(tpp, resolve(io.cwd, values.out));
  if (values.json === true) {
    io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return 0;
  }
  const files = summary.files as Record<string, string>;
  io.stdout.write(
    [
      `Sandbox TPP "${tpp.name}" written to ${values.out}`,
      `  org_id       ${tpp.orgId}`,
      `  software_id  ${tpp.softwareId}`,
      `  roles        ${roles.join(', ')}`,
      `  subject DN   ${tpp.subjectDn}`,
      `  x5t#S256     ${tpp.thumbprint}`,
      '',
      'Register the client (with the server running):',
      `  ${(summary.next as string[])[0]}`,
      '',
      `Files: ${Object.values(files).join(', ')}`,
      '',
    ].join('\n'),
  );
  return 0;
}

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureSandboxMaterial, sandboxMaterialExists } from '../sandbox/sandbox-material.ts';
import { sandboxRevocationPointers } from '../sandbox/revocation-services.ts';
import { NEXT_TRANSPORT_FILES, NotASandboxCertificate, renewSandboxTransport, TPP_FILES } from '../sandbox/tpp-credentials.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIo } from './io.ts';
import { configArgs, loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage: moat sandbox renew --credentials DIR [--json]
  issues the next transport certificate (same subject, new key) from the sandbox TPP CA for the
  credentials \`moat sandbox tpp\` wrote to DIR, as ${NEXT_TRANSPORT_FILES.cert} and ${NEXT_TRANSPORT_FILES.key};
  present it in an RFC 7592 update of the client to register it beside the current one
options: --config FILE
  --data-dir DIR    the server's data directory (default: dataDir, ./data): the sandbox CA
`;

/** Every option of `moat sandbox renew`, in parseArgs form. */
export const OPTIONS = { credentials: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' }, 'data-dir': { type: 'string' } } as const;

/** `moat sandbox renew`: the sandbox's self-service renewal (no running server needed). */
export async function sandboxRenewCommand(args: string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: OPTIONS, strict: true }));
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (values.credentials === undefined) {
    io.stderr.write(`moat: --credentials DIR is required\n${USAGE}`);
    return EXIT_USAGE;
  }
  const loaded = loadConfigOrReport(configArgs(values), io);
  if ('exitCode' in loaded) return loaded.exitCode;
  const { config } = loaded.loaded;
  if (config.mode !== 'sandbox') {
    io.stderr.write('moat: sandbox renew works only in sandbox mode (this configuration is mode: production): renew with your CA\n');
    return EXIT_FAILURE;
  }
  if (!sandboxMaterialExists(config.dataDir)) {
    io.stderr.write(`moat: no sandbox under ${config.dataDir}: run this where the server runs, or pass its data directory with --data-dir DIR\n`);
    return EXIT_FAILURE;
  }
  const dir = resolve(io.cwd, values.credentials);
  const currentFile = join(dir, TPP_FILES.transportCert);
  if (!existsSync(currentFile)) {
    io.stderr.write(`moat: no ${TPP_FILES.transportCert} in ${dir}: give the directory \`moat sandbox tpp --out\` wrote\n`);
    return EXIT_FAILURE;
  }
  let next;
  try {
    next = await renewSandboxTransport(
      await ensureSandboxMaterial(config.dataDir),
      readFileSync(currentFile, 'utf8'),
      sandboxRevocationPointers(config.issuer),
    );
  } catch (err) {
    if (err instanceof NotASandboxCertificate) {
      io.stderr.write(`moat: ${currentFile}: ${err.message}\n`);
      return EXIT_FAILURE;
    }
    io.stderr.write(`moat: ${currentFile} is not a readable PEM certificate (${(err as Error).message})\n`);
    return EXIT_FAILURE;
  }
  const certFile = join(dir, NEXT_TRANSPORT_FILES.cert);
  const keyFile = join(dir, NEXT_TRANSPORT_FILES.key);
  writeFileSync(certFile, next.certPem, { mode: 0o644 });
  writeFileSync(keyFile, next.keyPem, { mode: 0o600 });
  const update =
    `curl --cacert ${join(dir, TPP_FILES.serverCa)} --cert ${certFile} --key ${keyFile} -X PUT ` +
    `-H "authorization: Bearer $REGISTRATION_ACCESS_TOKEN" -H 'content-type: application/json' ` +
    `--data "$(jq --arg id "$CLIENT_ID" '. + {client_id: $id}' ${join(dir, TPP_FILES.registration)})" ${config.issuer}/register/$CLIENT_ID`;
  if (values.json === true) {
    io.stdout.write(
      `${JSON.stringify({ certFile, keyFile, 'x5t#S256': next.thumbprint, subjectDn: next.subjectDn, notAfter: next.notAfter.toISOString(), update }, null, 2)}\n`,
    );
    return EXIT_OK;
  }
  io.stdout.write(
    [
      `Next transport certificate written to ${certFile} (key ${keyFile})`,
      `  subject DN   ${next.subjectDn}`,
      `  x5t#S256     ${next.thumbprint}`,
      `  expires      ${next.notAfter.toISOString()}`,
      '',
      'Register it (RFC 7592 update, presenting the new certificate; both work until the old one is retired):',
      `  ${update}`,
      '',
    ].join('\n'),
  );
  return EXIT_OK;
}

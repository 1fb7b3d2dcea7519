import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SANDBOX_PKI_PATH } from '../sandbox/revocation-services.ts';
import type { CliIo } from './io.ts';
import { configArgs, loadConfigOrReport } from './load-config-or-report.ts';
import { postToServer, sandboxServerCa } from './sandbox-server.ts';

export const USAGE = `usage: moat sandbox revoke --cert transport.pem --key transport.key [--issuer URL] [--ca server-ca.pem]
  has the sandbox TPP CA revoke a certificate, proving possession of its key over mutual TLS
options: --config FILE
  --data-dir DIR    the server's data directory (default: dataDir, ./data): its sandbox CA, unless --ca is given
`;

/** Every option of `moat sandbox revoke`, in parseArgs form. */
export const OPTIONS = {
  cert: { type: 'string' },
  key: { type: 'string' },
  issuer: { type: 'string' },
  ca: { type: 'string' },
  config: { type: 'string' },
  'data-dir': { type: 'string' },
} as const;

/**
 * `moat sandbox revoke`: asks the sandbox TPP CA to revoke a certificate, proving possession by
 * presenting it over mutual TLS. Moat then learns of the revocation the way it would from a real CA:
 * from the OCSP responder, at its next certificate check.
 */
export async function sandboxRevokeCommand(args: string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: OPTIONS, strict: true }));
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.cert === undefined || values.key === undefined) {
    io.stderr.write(`moat: --cert and --key are required\n${USAGE}`);
    return 2;
  }
  const loaded = loadConfigOrReport(configArgs(values), io);
  if ('exitCode' in loaded) return loaded.exitCode;
  const { config } = loaded.loaded;
  const issuer = values.issuer ?? config.issuer;
  const ca = await sandboxServerCa(values.ca, config, io);
  if (ca === undefined) return 1;
  let cert: string;
  let key: string;
  try {
    cert = readFileSync(resolve(io.cwd, values.cert), 'utf8');
    key = readFileSync(resolve(io.cwd, values.key), 'utf8');
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n`);
    return 1;
  }
  const url = new URL(`${issuer.replace(/\/$/, '')}${SANDBOX_PKI_PATH}/revoke`);
  try {
    const { status, text: body } = await postToServer(url, { ca, cert, key });
    if (status !== 200) {
      io.stderr.write(`moat: the sandbox CA refused (HTTP ${status}): ${body}\n`);
      return 1;
    }
    const answer = JSON.parse(body) as { revoked: string; thumbprint: string; note: string };
    io.stdout.write(`revoked serial ${answer.revoked} (x5t#S256 ${answer.thumbprint}); ${answer.note}\n`);
    return 0;
  } catch (err) {
    io.stderr.write(`moat: could not reach ${url.origin}: ${(err as Error).message}\n`);
    return 1;
  }
}

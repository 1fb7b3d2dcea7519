import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { resolve } from 'node:path';
import type { MoatConfig } from '../config/schema.ts';
import { ensureSandboxMaterial, sandboxMaterialExists } from '../sandbox/sandbox-material.ts';
import type { CliIo } from './io.ts';

/**
 * The CA of a running sandbox server's own certificate, for commands that call it over HTTPS: the
 * file given with --ca, else the sandbox server CA under the data directory. Undefined after saying
 * why on stderr, when neither is there.
 */
export async function sandboxServerCa(ca: string | undefined, config: MoatConfig, io: CliIo): Promise<string | undefined> {
  if (ca === undefined && !sandboxMaterialExists(config.dataDir)) {
    io.stderr.write(
      `moat: no sandbox under ${config.dataDir} to take the server's CA from: run this where the server runs, ` +
        'or pass its data directory with --data-dir DIR (or the CA with --ca server-ca.pem)\n',
    );
    return undefined;
  }
  try {
    return ca === undefined ? (await ensureSandboxMaterial(config.dataDir)).serverCaPem : readFileSync(resolve(io.cwd, ca), 'utf8');
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n`);
    return undefined;
  }
}

/** One POST to the running server over HTTPS (presenting a certificate when given); its status and body text. */
export function postToServer(url: URL, options: { ca: string; cert?: string; key?: string; json?: string }): Promise<{ status: number; text: string }> {
  return new Promise((done, fail) => {
    const headers = options.json === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(options.json)) };
    const req = request(
      url,
      {
        method: 'POST',
        ca: options.ca,
        timeout: 10_000,
        headers,
        ...(options.cert === undefined ? {} : { cert: options.cert }),
        ...(options.key === undefined ? {} : { key: options.key }),
      },
      (res) => {
        let received = '';
        res.on('data', (d: Buffer) => {
          received += d.toString();
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, text: received }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url.origin} did not answer`)));
    req.on('error', fail);
    req.end(options.json);
  });
}

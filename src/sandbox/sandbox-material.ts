import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { createCa, issueLeaf } from './certificate-issuing.ts';

/*
 * The sandbox's own trust: created once under `${dataDir}/sandbox/` on first start (or by the first
 * `moat sandbox tpp`), then loaded. Two CAs on purpose: the server CA issues Moat's localhost
 * certificate, the TPP CA issues TPP transport certificates — so a server certificate can never
 * authenticate a client.
 */

/** The `iss` of sandbox software statements. */
export const SANDBOX_DIRECTORY_ISSUER = 'moat-sandbox-directory';

export interface SandboxMaterial {
  dir: string;
  serverCaPem: string;
  serverCaCertFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  tppCaPem: string;
  tppCaKeyPem: string;
  tppCaCertFile: string;
  directory: {
    issuer: string;
    /** Public JWKS file (what Moat trusts). */
    jwksFile: string;
    privateJwk: JWK & { kid: string; alg: string };
    publicJwks: { keys: JWK[] };
    orgIdAttribute: string;
  };
}

const FILES = {
  serverCa: 'server-ca.pem',
  serverCaKey: 'server-ca.key',
  server: 'server.pem',
  serverKey: 'server.key',
  tppCa: 'tpp-ca.pem',
  tppCaKey: 'tpp-ca.key',
  directoryPrivate: 'directory.jwks.json',
  directoryPublic: 'directory.public.jwks.json',
} as const;

/** Whether the sandbox material is under `dataDir` already (a server or `moat sandbox tpp` made it). */
export function sandboxMaterialExists(dataDir: string): boolean {
  return existsSync(join(dataDir, 'sandbox', FILES.directoryPublic));
}

export async function ensureSandboxMaterial(dataDir: string, options: { now?: Date } = {}): Promise<SandboxMaterial> {
  const dir = join(dataDir, 'sandbox');
  if (!sandboxMaterialExists(dataDir)) await generate(dataDir, dir, options.now ?? new Date());
  return load(dir);
}

async function generate(dataDir: string, dir: string, now: Date): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  // Built in a private directory and renamed into place: of two processes starting at once, one
  // rename wins and the other's material is discarded, so nobody ever sees half a sandbox.
  const staging = join(dataDir, `.sandbox-${process.pid}-${randomBytes(6).toString('hex')}`);
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  try {
    const serverCa = await createCa([{ C: ['GB'] }, { O: ['Moat Sandbox'] }, { CN: ['Moat Sandbox Server CA'] }], now);
    const server = await issueLeaf(serverCa, {
      subject: [{ C: ['GB'] }, { O: ['Moat Sandbox'] }, { CN: ['localhost'] }],
      usage: 'serverAuth',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
      now,
      days: 825,
    });
    const tppCa = await createCa([{ C: ['GB'] }, { O: ['Moat Sandbox'] }, { CN: ['Moat Sandbox TPP CA'] }], now);
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    const kid = await calculateJwkThumbprint(jwk);
    const privateJwk = { ...jwk, kid, alg: 'ES256', use: 'sig' };
    const { d: _d, ...publicJwk } = privateJwk;

    const put = (name: string, content: string, secret: boolean) => writeFileSync(join(staging, name), content, { mode: secret ? 0o600 : 0o644 });
    put(FILES.serverCa, serverCa.certPem, false);
    put(FILES.serverCaKey, serverCa.keyPem, true);
    put(FILES.server, server.certPem, false);
    put(FILES.serverKey, server.keyPem, true);
    put(FILES.tppCa, tppCa.certPem, false);
    put(FILES.tppCaKey, tppCa.keyPem, true);
    put(FILES.directoryPrivate, `${JSON.stringify({ keys: [privateJwk] }, null, 2)}\n`, true);
    put(FILES.directoryPublic, `${JSON.stringify({ keys: [publicJwk] }, null, 2)}\n`, false);
    try {
      renameSync(staging, dir);
    } catch (err) {
      if (!['ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function load(dir: string): SandboxMaterial {
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  const privateJwks = JSON.parse(read(FILES.directoryPrivate)) as { keys: (JWK & { kid: string; alg: string })[] };
  return {
    dir,
    serverCaPem: read(FILES.serverCa),
    serverCaCertFile: join(dir, FILES.serverCa),
    serverCertFile: join(dir, FILES.server),
    serverKeyFile: join(dir, FILES.serverKey),
    tppCaPem: read(FILES.tppCa),
    tppCaKeyPem: read(FILES.tppCaKey),
    tppCaCertFile: join(dir, FILES.tppCa),
    directory: {
      issuer: SANDBOX_DIRECTORY_ISSUER,
      jwksFile: join(dir, FILES.directoryPublic),
      privateJwk: privateJwks.keys[0]!,
      publicJwks: JSON.parse(read(FILES.directoryPublic)) as { keys: JWK[] },
      // UK Open Banking style: the transport certificate's OU carries the organisation id.
      orgIdAttribute: 'OU',
    },
  };
}

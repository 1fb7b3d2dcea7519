import type { Pool } from 'undici';
import { benchConfig, freePort, type BenchFixtures, type ConfigTuning } from './fixtures.ts';
import { authorizationCode, send, type BenchClient } from './load/fapi-client.ts';
import { createTlsPool, type TlsVersion } from './load/tls-pools.ts';
import { spawnServer, type ServerHandle, type SpawnOptions } from './servers/server-handle.ts';

/*
 * The two servers every comparison runs against — Moat and the bare oidc-provider baseline — each in
 * its own process, with the same TPP registered on both, and the pools that reach them.
 */

/** `moat` (the headline), `baseline`, or a secondary Moat row (`--variants`). */
export type TargetName = 'moat' | 'baseline' | `moat, ${string}`;

export interface Target {
  name: TargetName;
  server: ServerHandle;
  origin: string;
  client: BenchClient;
  /** A TPP pool (its transport certificate): keep-alive, or a new connection per `reset` request. */
  tppPool(connections: number, options?: { tlsVersion?: TlsVersion; resumeSessions?: boolean }): Pool;
  /** The resource server's pool (its own certificate) for introspection. */
  resourceServerPool(connections: number): Pool;
  /** Customers' browsers: no client certificate. */
  browserPool(connections: number): Pool;
  /** A real authorization code from a complete flow, not redeemed, with its PKCE verifier. */
  templateCode(): Promise<{ code: string; codeVerifier: string }>;
}

/** Registers the TPP at Moat the way a TPP does: its software statement over mutual TLS (RFC 7591). */
async function registerAtMoat(f: BenchFixtures, origin: string): Promise<BenchClient> {
  const pool = createTlsPool({ origin, serverCaPem: f.sandbox.serverCaPem, identity: f.tpp, connections: 1 });
  try {
    const reply = await send(pool, { method: 'POST', path: '/register', json: f.tpp.registration });
    if (reply.status !== 201) throw new Error(`registration at Moat failed: HTTP ${reply.status} ${reply.text}`);
    const body = JSON.parse(reply.text) as { client_id: string; redirect_uris: string[] };
    return { clientId: body.client_id, redirectUri: body.redirect_uris[0]! };
  } finally {
    await pool.close();
  }
}

/** The same client on the baseline, stored directly: bare oidc-provider has no software-statement policy. */
async function registerAtBaseline(f: BenchFixtures, server: ServerHandle, client: BenchClient): Promise<void> {
  const { software_statement: _ssa, ...metadata } = f.tpp.registration;
  await server.registerClient({ ...metadata, client_id: client.clientId });
}

function createTarget(name: TargetName, f: BenchFixtures, server: ServerHandle, client: BenchClient): Target {
  const origin = `https://127.0.0.1:${server.ports.public}`;
  const base = { origin, serverCaPem: f.sandbox.serverCaPem };
  let template: Promise<{ code: string; codeVerifier: string }> | undefined;
  const target: Target = {
    name,
    server,
    origin,
    client,
    tppPool: (connections, options = {}) => createTlsPool({ ...base, identity: f.tpp, connections, ...options }),
    resourceServerPool: (connections) => createTlsPool({ ...base, identity: f.resourceServer, connections }),
    browserPool: (connections) => createTlsPool({ ...base, connections }),
    // One real flow per server and run; the server keeps what it needs of it to clone codes.
    templateCode: () => {
      template ??= (async () => {
        const tpp = target.tppPool(1);
        const browser = target.browserPool(1);
        try {
          return await authorizationCode({ tpp, browser }, origin, client);
        } finally {
          await Promise.all([tpp.close(), browser.close()]);
        }
      })();
      return template;
    },
  };
  return target;
}

export interface StartOptions extends SpawnOptions {
  tuning?: ConfigTuning;
  /** The process's name (its CPU profile's file name); `moat` unless given. */
  name?: string;
  /** The row's name; `moat` unless given. */
  row?: TargetName;
  /** Moat on the embedded default whatever --postgres and --redis say. */
  embedded?: boolean;
  callJournal?: boolean;
}

export async function startMoatTarget(f: BenchFixtures, options: StartOptions = {}): Promise<Target> {
  const port = await freePort();
  const gatewayCheck = { port: await freePort(), sharedSecretFile: f.gatewaySecret.file };
  const server = await spawnServer(
    options.name ?? 'moat',
    {
      kind: 'moat',
      rawConfig: benchConfig(f, port, {
        storage: options.embedded !== true,
        gatewayCheck,
        ...(options.tuning === undefined ? {} : { tuning: options.tuning }),
        ...(options.callJournal === undefined ? {} : { callJournal: options.callJournal }),
      }),
      baseDir: f.dir,
    },
    options,
  );
  try {
    const client = await registerAtMoat(f, `https://127.0.0.1:${server.ports.public}`);
    return createTarget(options.row ?? 'moat', f, server, client);
  } catch (err) {
    await server.stop();
    throw err;
  }
}

export async function startBaselineTarget(f: BenchFixtures, client: BenchClient, options: StartOptions = {}): Promise<Target> {
  const port = await freePort();
  const server = await spawnServer('baseline', { kind: 'baseline', rawConfig: benchConfig(f, port), baseDir: f.dir }, options);
  try {
    await registerAtBaseline(f, server, client);
    return createTarget('baseline', f, server, client);
  } catch (err) {
    await server.stop();
    throw err;
  }
}

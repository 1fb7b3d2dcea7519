import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { ensureSandboxMaterial, type SandboxMaterial } from '../src/sandbox/sandbox-material.ts';
import { sandboxApiIdentifier } from '../src/sandbox/sandbox-api.ts';
import { issueSandboxTpp } from '../src/sandbox/tpp-credentials.ts';
import type { TlsIdentity } from './load/tls-pools.ts';
export { freePort } from '../test/support/ports.ts';

/*
 * What every server of a run shares: one sandbox (server certificate, TPP CA, directory key) and one
 * set of signing keys in a throwaway directory, a TPP and a resource server with certificates from
 * that sandbox CA, and — when asked for — a throwaway Postgres database and Redis key prefix.
 */

export interface BenchFixtures {
  dir: string;
  /** The shared secret of Moat's gateway check listener, and the file Moat reads it from. */
  gatewaySecret: { value: string; file: string };
  /** Sandbox material lives here (Moat's embedded database too, under pglite/). */
  dataDir: string;
  keysDir: string;
  sandbox: SandboxMaterial;
  tpp: TlsIdentity & { registration: Record<string, unknown> };
  resourceServer: TlsIdentity & { clientId: string; subjectDn: string };
  storage: Record<string, unknown>;
  /** Whether Moat keeps its sandbox call journal (--call-journal); production runs without it. */
  callJournal: boolean;
  close(): Promise<void>;
}

export const RESOURCE_SERVER_CLIENT_ID = 'bench-resource-server';

async function throwawayPostgres(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `moat_bench_${randomBytes(6).toString('hex')}`;
  const run = async (statement: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

function throwawayRedisPrefix(url: string): { prefix: string; cleanup(): Promise<void> } {
  const prefix = `moat-bench:${randomBytes(6).toString('hex')}:`;
  return {
    prefix,
    async cleanup() {
      const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redis.connect();
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) await redis.del(...keys);
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  };
}

export async function createFixtures(options: { postgresUrl?: string; redisUrl?: string; callJournal?: boolean }): Promise<BenchFixtures> {
  const dir = mkdtempSync(join(tmpdir(), 'moat-bench-'));
  const cleanups: (() => Promise<void>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const close = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  };
  try {
    const dataDir = join(dir, 'data');
    const sandbox = await ensureSandboxMaterial(dataDir);
    // The issuer named in these credentials is informational; both servers trust the same CA.
    const tpp = await issueSandboxTpp(sandbox, { name: 'Bench Fintech', issuer: 'https://127.0.0.1', roles: ['AISP', 'PISP'] });
    const rs = await issueSandboxTpp(sandbox, { name: 'Bench Resource Server', issuer: 'https://127.0.0.1', roles: ['AISP'] });

    const storage: Record<string, unknown> = {};
    if (options.postgresUrl !== undefined) {
      const db = await throwawayPostgres(options.postgresUrl);
      cleanups.push(db.drop);
      storage.postgresUrl = db.url;
    }
    if (options.redisUrl !== undefined) {
      const redis = throwawayRedisPrefix(options.redisUrl);
      cleanups.push(redis.cleanup);
      Object.assign(storage, { redisUrl: options.redisUrl, redisKeyPrefix: redis.prefix });
    }
    const gatewaySecret = { value: randomBytes(32).toString('hex'), file: join(dir, 'gateway-secret') };
    writeFileSync(gatewaySecret.file, `${gatewaySecret.value}\n`, { mode: 0o600 });
    return {
      dir,
      dataDir,
      keysDir: join(dir, 'keys'),
      sandbox,
      storage,
      close,
      gatewaySecret,
      callJournal: options.callJournal === true,
      tpp: { certPem: tpp.transportCertPem, keyPem: tpp.transportKeyPem, registration: tpp.registration },
      resourceServer: { certPem: rs.transportCertPem, keyPem: rs.transportKeyPem, clientId: RESOURCE_SERVER_CLIENT_ID, subjectDn: rs.subjectDn },
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Token lifetimes and purge interval for the soak, so stored tokens reach a steady state within it. */
export interface ConfigTuning {
  tokens?: Record<string, number>;
  purgeIntervalSeconds?: number;
}

/**
 * The configuration both servers are built from (Moat validates it; the baseline hands it to
 * createProvider): sandbox mode on loopback, Moat's defaults but for the rate limits and sign-in
 * throttles (wide, so the benchmark measures throughput rather than refusals — they still run), and
 * one resource server, the sandbox API, with a client that introspects by mTLS.
 */
export function benchConfig(
  f: BenchFixtures,
  port: number,
  options: {
    storage?: boolean;
    tuning?: ConfigTuning;
    gatewayCheck?: { port: number; sharedSecretFile: string };
    /** Overrides --call-journal (a secondary row keeps sandbox mode's default, on). */
    callJournal?: boolean;
  } = {},
): Record<string, unknown> {
  const issuer = `https://127.0.0.1:${port}`;
  const wide = { requests: 1_000_000, perSeconds: 60 };
  return {
    mode: 'sandbox',
    issuer,
    listen: { host: '127.0.0.1', port },
    dataDir: f.dataDir,
    keys: { dir: f.keysDir },
    logging: { level: 'info' },
    // What production runs on the request path: no call journal (sandbox mode's default is on).
    diagnostics: { enabled: options.callJournal ?? f.callJournal },
    rateLimits: Object.fromEntries(['par', 'token', 'registration'].map((e) => [e, { perClient: wide, perAddress: wide }])),
    // The sign-in throttles reserve a slot per password or code in evaluation, as many as failures
    // are allowed: the flow scenario's concurrent flows all sign in as alice, which at the defaults
    // (5) reads as a password spray and is refused 429. Wide, like the rate limits (they still run).
    customers: { loginThrottle: { perAccount: { failures: 100 } } },
    sca: { totp: { failures: 20 } },
    admin: { port: 0 },
    resourceServers: [
      {
        identifier: sandboxApiIdentifier(issuer),
        scopes: ['accounts', 'payments', 'fundsconfirmations'],
        accessTokenFormat: 'opaque',
        client: { clientId: f.resourceServer.clientId, tlsClientAuthSubjectDn: f.resourceServer.subjectDn },
      },
    ],
    // Moat's gateway check (issue 22), asked by the gateway-check scenario for the sandbox API's paths.
    ...(options.gatewayCheck === undefined
      ? {}
      : {
          gatewayCheck: {
            enabled: true,
            port: options.gatewayCheck.port,
            sharedSecretFile: options.gatewayCheck.sharedSecretFile,
            forwardedCertificate: 'nginx',
            apiOrigin: `https://127.0.0.1:${port}`,
            routes: [{ prefix: '/sandbox-api', resource: sandboxApiIdentifier(issuer), scopes: ['accounts'] }],
          },
        }),
    ...(options.tuning?.tokens === undefined ? {} : { tokens: options.tuning.tokens }),
    storage: {
      ...(options.storage === true ? f.storage : {}),
      ...(options.tuning?.purgeIntervalSeconds === undefined ? {} : { purgeIntervalSeconds: options.tuning.purgeIntervalSeconds }),
    },
  };
}

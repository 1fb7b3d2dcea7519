import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { configHash } from '../../src/config/config-description.ts';
import { validateConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createMoatServer, type MoatServer } from '../../src/server.ts';
import { adminRequest } from '../support/admin-api.ts';
import { adminToken, metricFamilies, sampleSum, scrapeMetrics } from '../support/admin-metrics.ts';
import { runMoat } from '../support/cli.ts';
import { createThrowawayPostgres, describeWithServices, redisTestPrefix } from '../support/databases.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';

/*
 * Security configuration as code, with drift detection (issue 21): each instance reports the hash
 * of its effective configuration (log, metric, admin API); `moat config plan --against` shows what a
 * file would change on a running instance, key by key, secrets only as changed; instances of one
 * deployment (one Postgres) record heartbeats, and two configurations live at once raise
 * moat_config_drift.
 */

describe('an instance and its configuration', () => {
  let h: Harness;
  let dir: string;
  beforeAll(async () => {
    h = await startMoat();
    dir = mkdtempSync(join(tmpdir(), 'moat-plan-'));
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs the hash of its effective configuration at start, and reports it in the metrics and the admin API', async () => {
    const hash = configHash(h.config);
    expect(h.logs).toContainEqual(expect.objectContaining({ event: 'config.loaded', configHash: hash }));
    const metrics = await scrapeMetrics(h);
    expect(sampleSum(metrics, 'moat_config_info', { hash })).toBe(1);
    const described = await adminRequest(h.moat.adminPort!, 'GET', '/config', { token: adminToken(h) });
    expect(described.status).toBe(200);
    expect(described.body).toEqual(expect.objectContaining({ hash, instanceId: h.moat.heartbeat.instanceId }));
    expect(described.body.keys['tokens.accessTokenTtl']).toEqual({ value: 300 });
  });

  const plan = (file: string, ...more: string[]) =>
    runMoat([
      'config',
      'plan',
      '--config',
      file,
      '--against',
      `http://127.0.0.1:${h.moat.adminPort}`,
      '--admin-token-file',
      h.config.admin.tokenFile!,
      ...more,
    ]);

  it('`moat config plan` finds no change between the running instance and a file of the configuration it runs', async () => {
    const file = join(dir, 'same.yaml');
    writeFileSync(file, JSON.stringify(h.config));
    const result = await plan(file, '--detailed-exitcode');
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/^no changes: /);
  });

  it('`moat config plan` shows each changed key after a change, a secret only as changed, and exits 2 with --detailed-exitcode', async () => {
    const file = join(dir, 'changed.yaml');
    const storage =
      h.config.storage.postgresUrl === undefined
        ? {}
        : { storage: { ...h.config.storage, postgresUrl: `${h.config.storage.postgresUrl}?application_name=changed-secret` } };
    writeFileSync(file, JSON.stringify({ ...h.config, tokens: { ...h.config.tokens, accessTokenTtl: 600 }, ...storage }));
    const result = await plan(file, '--detailed-exitcode');
    expect(result.err).toBe('');
    expect(result.code).toBe(2);
    expect(result.out).toContain('  ~ tokens.accessTokenTtl: 300 → 600');
    if (h.config.storage.postgresUrl !== undefined) {
      expect(result.out).toContain('  ~ storage.postgresUrl: (secret) changed');
      expect(result.out).not.toContain('changed-secret');
      expect(result.out).not.toContain(h.config.storage.postgresUrl);
    }
    expect(result.out).toMatch(/^\d key(s)? would change on http:\/\/127\.0\.0\.1:\d+ \(running configuration [0-9a-f]{12}\)/);
  });

  it('`moat config plan` without --against, or against no listener, says what is wrong', async () => {
    const file = join(dir, 'same.yaml');
    const missing = await runMoat(['config', 'plan', '--config', file]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('--against ADMIN_URL is required');
    const nobody = await runMoat(['config', 'plan', '--config', file, '--against', 'http://127.0.0.1:1', '--admin-token-file', h.config.admin.tokenFile!]);
    expect(nobody.code).toBe(1);
    expect(nobody.err).toMatch(/cannot be reached/);
  });
});

describeWithServices('instances of one deployment (one Postgres and Redis)', () => {
  let dir: string;
  let drop: () => Promise<void>;
  let cleanRedis: () => Promise<void>;
  let raw: Record<string, unknown>;
  const instances: MoatServer[] = [];
  const silent = () => createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));

  /** Starts an instance from the shared configuration, changed by `change`. */
  async function instance(change: Record<string, unknown> = {}): Promise<{ moat: MoatServer; adminPort: number }> {
    const moat = await createMoatServer(validateConfig({ ...raw, ...change }, 'test', dir), silent());
    instances.push(moat);
    await moat.listen();
    return { moat, adminPort: moat.adminPort! };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-drift-'));
    const pg = await createThrowawayPostgres();
    const redis = redisTestPrefix();
    drop = pg.drop;
    cleanRedis = redis.cleanup;
    // What a deployment's instances share: the file, the database, Redis, the key directory.
    raw = {
      issuer: 'https://moat.test.example',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { port: 0 },
      dataDir: dir,
      keys: { dir: join(dir, 'keys') },
      storage: { postgresUrl: pg.url, redisUrl: redis.url, redisKeyPrefix: redis.prefix },
      logging: { level: 'silent' },
    };
  }, 60_000);
  afterAll(async () => {
    for (const moat of instances) await moat.close().catch(() => undefined);
    await drop?.();
    await cleanRedis?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('report no drift while every instance runs the same configuration, and drift while one runs another', async () => {
    const a = await instance();
    const b = await instance();
    expect(b.moat.heartbeat.configHash).toBe(a.moat.heartbeat.configHash);
    await b.moat.heartbeat.beatNow();
    await a.moat.heartbeat.beatNow();
    // The sandbox's admin token, generated by the first instance in the shared data directory.
    const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    const metricsOf = async (port: number) => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      return res.text();
    };
    let metrics = await metricsOf(a.adminPort);
    expect(metricFamilies(metrics).get('moat_config_drift')).toBe('gauge');
    expect(sampleSum(metrics, 'moat_config_drift')).toBe(0);
    expect(sampleSum(metrics, 'moat_config_instances', { hash: a.moat.heartbeat.configHash })).toBe(2);

    // A third instance started from a changed file: the deployment now runs two configurations.
    const c = await instance({ tokens: { accessTokenTtl: 600 } });
    expect(c.moat.heartbeat.configHash).not.toBe(a.moat.heartbeat.configHash);
    await c.moat.heartbeat.beatNow();
    await a.moat.heartbeat.beatNow();
    metrics = await metricsOf(a.adminPort);
    expect(sampleSum(metrics, 'moat_config_drift')).toBe(1);
    expect(sampleSum(metrics, 'moat_config_instances', { hash: c.moat.heartbeat.configHash })).toBe(1);
    const seen = await adminRequest(b.adminPort, 'GET', '/config/instances', { token });
    expect(seen.status).toBe(200);
    expect(seen.body.drift).toBe(true);
    expect(seen.body.instances.map((i: { configHash: string }) => i.configHash).sort()).toEqual(
      [a.moat.heartbeat.configHash, a.moat.heartbeat.configHash, c.moat.heartbeat.configHash].sort(),
    );

    // The odd one out stops: its heartbeat row goes with it, and the drift with the next heartbeat.
    await c.moat.close();
    instances.splice(instances.indexOf(c.moat), 1);
    await a.moat.heartbeat.beatNow();
    expect(sampleSum(await metricsOf(a.adminPort), 'moat_config_drift')).toBe(0);
  }, 120_000);
});

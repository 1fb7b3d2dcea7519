import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';
import type { SqlClient } from '../storage/sql/sql-client.ts';

/*
 * Drift detection between the instances of one deployment — every Moat on the same database. Each
 * instance records its configuration hash with a heartbeat; the live instances (seen within three
 * heartbeats) and the hashes they run are what the metrics and the admin API show. Two hashes at
 * once is drift: a roll under way, or an instance started from another file.
 */

/** How often an instance records itself, in seconds; live means seen within three of these. */
export const HEARTBEAT_SECONDS = 15;
const LIVE_HEARTBEATS = 3;
/** Rows of instances gone this long are deleted. */
const PRUNE_AFTER_SECONDS = 86_400;

export interface RunningInstance {
  instanceId: string;
  configHash: string;
  hostname: string;
  pid: number;
  startedAt: Date;
  lastSeenAt: Date;
}

export interface InstanceHeartbeat {
  readonly instanceId: string;
  readonly configHash: string;
  /** Records this instance now and reads the live ones (what the metrics then report). */
  beatNow(): Promise<RunningInstance[]>;
  /** The live instances of the deployment, newest first. */
  live(): Promise<RunningInstance[]>;
  start(): void;
  stop(): Promise<void>;
}

interface Row {
  instance_id: string;
  config_hash: string;
  hostname: string;
  pid: number;
  started_at: Date | string;
  last_seen_at: Date | string;
}

export function createInstanceHeartbeat(deps: { sql: SqlClient; configHash: string; metrics: Registry; logger: Logger; now?: () => Date }): InstanceHeartbeat {
  const now = deps.now ?? (() => new Date());
  const instanceId = randomUUID();
  const startedAt = now();
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<unknown> | undefined;
  /** What the last heartbeat saw: hash → live instances running it. */
  let lastSeen = new Map<string, number>([[deps.configHash, 1]]);

  new Gauge({
    name: 'moat_config_info',
    help: "The hash of this instance's effective configuration (value 1)",
    labelNames: ['hash'],
    registers: [deps.metrics],
    aggregator: 'max',
    collect() {
      this.reset();
      this.set({ hash: deps.configHash }, 1);
    },
  });
  new Gauge({
    name: 'moat_config_instances',
    help: 'Live instances of this deployment by configuration hash (at the last heartbeat)',
    labelNames: ['hash'],
    registers: [deps.metrics],
    aggregator: 'max',
    collect() {
      this.reset();
      for (const [hash, n] of lastSeen) this.set({ hash }, n);
    },
  });
  new Gauge({
    name: 'moat_config_drift',
    help: '1 when the live instances of this deployment run different configurations, else 0',
    registers: [deps.metrics],
    aggregator: 'max',
    collect() {
      this.set(lastSeen.size > 1 ? 1 : 0);
    },
  });

  const live = async (): Promise<RunningInstance[]> => {
    const since = new Date(now().getTime() - LIVE_HEARTBEATS * HEARTBEAT_SECONDS * 1000);
    const { rows } = await deps.sql.query<Row>('SELECT * FROM moat_instance WHERE last_seen_at >= $1 ORDER BY started_at DESC', [since]);
    return rows.map((r) => ({
      instanceId: r.instance_id,
      configHash: r.config_hash,
      hostname: r.hostname,
      pid: r.pid,
      startedAt: new Date(r.started_at),
      lastSeenAt: new Date(r.last_seen_at),
    }));
  };

  const beatNow = async (): Promise<RunningInstance[]> => {
    const at = now();
    await deps.sql.query(
      `INSERT INTO moat_instance (instance_id, config_hash, hostname, pid, started_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (instance_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at, config_hash = EXCLUDED.config_hash`,
      [instanceId, deps.configHash, hostname(), process.pid, startedAt, at],
    );
    await deps.sql.query('DELETE FROM moat_instance WHERE last_seen_at < $1', [new Date(at.getTime() - PRUNE_AFTER_SECONDS * 1000)]);
    const instances = await live();
    const counts = new Map<string, number>();
    for (const i of instances) counts.set(i.configHash, (counts.get(i.configHash) ?? 0) + 1);
    if (counts.size > 1 && lastSeen.size <= 1) {
      deps.logger.warn(
        { event: 'config.drift', configHash: deps.configHash, detail: Object.fromEntries(counts) },
        'the instances of this deployment run different configurations',
      );
    }
    lastSeen = counts;
    return instances;
  };

  return {
    instanceId,
    configHash: deps.configHash,
    beatNow,
    live,
    start() {
      const beat = () => {
        beating ??= beatNow()
          .catch((err: unknown) => deps.logger.warn({ err, event: 'config.heartbeat_failed' }, 'recording the instance heartbeat failed'))
          .finally(() => {
            beating = undefined;
          });
      };
      beat();
      timer = setInterval(beat, HEARTBEAT_SECONDS * 1000);
      timer.unref();
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      await beating;
      // Gone at once, rather than counted live for three more heartbeats.
      await deps.sql.query('DELETE FROM moat_instance WHERE instance_id = $1', [instanceId]).catch(() => undefined);
    },
  };
}

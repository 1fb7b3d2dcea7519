import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';

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

/** The deployment's instances as recorded (Postgres `moat_instance`; src/storage/sql/instance-store.ts). */
export interface InstanceStore {
  /** Records the instance, or for one already recorded its configuration hash and when it was last seen. */
  record(instance: RunningInstance): Promise<void>;
  /** The instances seen at or after `since`, newest started first. */
  seenSince(since: Date): Promise<RunningInstance[]>;
  /** Forgets the instances not seen since `before`. */
  forgetUnseenSince(before: Date): Promise<void>;
  forget(instanceId: string): Promise<void>;
}

export function createInstanceHeartbeat(deps: {
  store: InstanceStore;
  configHash: string;
  metrics: Registry;
  logger: Logger;
  now?: () => Date;
}): InstanceHeartbeat {
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
    return deps.store.seenSince(since);
  };

  const beatNow = async (): Promise<RunningInstance[]> => {
    const at = now();
    await deps.store.record({ instanceId, configHash: deps.configHash, hostname: hostname(), pid: process.pid, startedAt, lastSeenAt: at });
    await deps.store.forgetUnseenSince(new Date(at.getTime() - PRUNE_AFTER_SECONDS * 1000));
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
      await deps.store.forget(instanceId).catch(() => undefined);
    },
  };
}

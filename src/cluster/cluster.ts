import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';

/*
 * One Moat process per core with node:cluster. The primary prepares what every worker must share
 * (signing keys, cookie secrets, sandbox material — created once, never raced), forks the workers,
 * restarts one that dies, and on SIGTERM stops them all gracefully. The workers share the public and
 * admin ports (the kernel spreads connections); everything they must agree on lives in Postgres and
 * Redis, which is why more than one worker needs both (the embedded database is one process's).
 * Prometheus metrics are summed across workers by the primary (prom-client's AggregatorRegistry),
 * whichever worker the scrape lands on.
 */

/** `workers: auto` — one per core the process may use. */
export function resolveWorkerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** What the admin listener serves at /metrics: one process's registry, or the whole cluster's. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

const METRICS_REQUEST = 'moat:cluster-metrics-request';
const METRICS_RESPONSE = 'moat:cluster-metrics-response';
/** More crashes than this within CRASH_WINDOW_MS and the primary gives up: something is wrong, not flaky. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;
const RESTART_DELAY_MS = 1_000;

interface MetricsRequest {
  type: typeof METRICS_REQUEST;
  id: number;
}
interface MetricsResponse {
  type: typeof METRICS_RESPONSE;
  id: number;
  text?: string;
  error?: string;
}

function isMessage<T extends { type: string }>(message: unknown, type: T['type']): message is T {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}

/**
 * In a worker: offers this process's registry to the primary's aggregation and returns the source
 * /metrics should serve (the cluster's sum). Outside a cluster: the registry itself.
 */
export function clusterMetricsSource(registry: Registry): MetricsSource {
  if (!cluster.isWorker) return registry;
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // installs the worker's answer to the primary's requests
  let next = 0;
  const waiting = new Map<number, (answer: MetricsResponse) => void>();
  process.on('message', (message: unknown) => {
    if (isMessage<MetricsResponse>(message, METRICS_RESPONSE)) waiting.get(message.id)?.(message);
  });
  return {
    contentType: registry.contentType,
    metrics: () =>
      new Promise<string>((resolve, reject) => {
        const id = next++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error('the cluster primary did not answer with metrics within 6 s'));
        }, 6_000);
        waiting.set(id, (answer) => {
          clearTimeout(timer);
          waiting.delete(id);
          if (answer.text !== undefined) resolve(answer.text);
          else reject(new Error(answer.error ?? 'the cluster primary could not aggregate metrics'));
        });
        process.send?.({ type: METRICS_REQUEST, id } satisfies MetricsRequest);
      }),
  };
}

export interface ClusterPrimaryOptions {
  workers: number;
  logger: Logger;
  /** How long workers get to drain before they are killed. */
  stopTimeoutMs: number;
}

/** Runs the primary until SIGINT/SIGTERM (exit code 0) or until workers keep crashing (1). */
export function runClusterPrimary(options: ClusterPrimaryOptions): Promise<number> {
  const { logger } = options;
  const aggregator = new AggregatorRegistry();
  const crashes: number[] = [];
  let stopping = false;

  return new Promise<number>((resolveExit) => {
    const finish = (code: number) => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      resolveExit(code);
    };
    const fork = () => {
      const worker = cluster.fork();
      worker.on('message', (message: unknown) => {
        if (!isMessage<MetricsRequest>(message, METRICS_REQUEST)) return;
        aggregator.clusterMetrics().then(
          (text) => worker.send({ type: METRICS_RESPONSE, id: message.id, text } satisfies MetricsResponse),
          (err: unknown) => worker.send({ type: METRICS_RESPONSE, id: message.id, error: (err as Error).message } satisfies MetricsResponse),
        );
      });
    };
    const live = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);

    cluster.on('exit', (worker, code, signal) => {
      if (stopping) {
        if (live().length === 0) {
          logger.info({ event: 'cluster.stopped' }, 'every worker stopped');
          finish(0);
        }
        return;
      }
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
      if (crashes.length > MAX_CRASHES) {
        logger.fatal({ event: 'cluster.crash_loop', crashes: crashes.length }, 'workers keep dying; stopping Moat');
        stopping = true;
        for (const w of live()) w.process.kill('SIGTERM');
        if (live().length === 0) finish(1);
        else cluster.once('exit', () => finish(1));
        return;
      }
      logger.error({ event: 'cluster.worker_died', pid: worker.process.pid, exitCode: code, signal }, 'a worker died; starting another');
      setTimeout(() => {
        if (!stopping) fork();
      }, RESTART_DELAY_MS).unref();
    });

    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ event: 'stop', signal, workers: live().length }, 'stopping every worker');
      for (const w of live()) w.process.kill('SIGTERM');
      setTimeout(() => {
        for (const w of live()) w.process.kill('SIGKILL');
      }, options.stopTimeoutMs).unref();
      if (live().length === 0) finish(0);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    for (let i = 0; i < options.workers; i += 1) fork();
    logger.info({ event: 'cluster.start', workers: options.workers }, `started ${options.workers} workers`);
  });
}

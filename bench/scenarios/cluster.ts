import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { benchConfig, freePort } from '../fixtures.ts';
import { clientCredentials } from '../load/fapi-client.ts';
import { runFixedRate } from '../load/load-generator.ts';
import { createTlsPool } from '../load/tls-pools.ts';
import { MeasurementRecorder, type Measurement } from '../measure.ts';
import { MOAT_ENV, MOAT_NODE_FLAGS } from '../servers/moat-process.ts';
import type { ServerStats } from '../servers/protocol.ts';
import type { ServerHandle } from '../servers/server-handle.ts';
import { costRatio, loop, ratio, type BenchContext, type ScenarioResult } from './scenario.ts';

/*
 * Scale-up on one machine: Moat started exactly as `npm start` starts it (src/main.ts), once with
 * `workers: 1` and once with `workers: 2` (node:cluster), on the same Postgres and Redis, under the
 * same client_credentials load over mTLS keep-alive connections (the kernel spreads connections over
 * the workers). CPU and RSS are the whole process tree's, read from /proc. Needs --postgres and
 * --redis: more than one worker refuses the embedded database.
 *
 * Each tree is measured closed loop (as many requests as it can take: issue 20's target row), then
 * at fixed rates below that: one worker at 40 % of what it took closed loop, two workers at the same
 * rate and at twice it. A Node process's CPU per request falls as its load rises (each wake-up of
 * the event loop, each socket read, each group commit serves more requests), so two workers sharing
 * one load each work less efficiently than one; the second fixed rate gives each of the two workers
 * the one worker's load, and so compares the work per request itself.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const TICKS_PER_SECOND = 100;
/** Two workers' CPU per request at most 10 % over one worker's: 1 / 1.1. */
export const WORKERS_CPU_TARGET = 0.909;
/** The idle window measured before the load. */
const IDLE_MS = 5_000;
/** The fixed rate, as a share of what one worker served closed loop. */
const FIXED_RATE_SHARE = 0.4;

function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    /* none */
  }
  return [pid, ...children.flatMap(processTree)];
}

/** utime + stime of one process (µs); 0 once it has exited. */
function processCpuMicros(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1e6;
  } catch {
    return 0;
  }
}

/** utime + stime of every process in the tree (µs), and their RSS. */
function treeStats(pid: number): ServerStats {
  let cpuMicros = 0;
  let rssBytes = 0;
  for (const p of processTree(pid)) {
    try {
      cpuMicros += processCpuMicros(p);
      rssBytes += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      /* exited meanwhile */
    }
  }
  return { cpuMicros, rssBytes, heapUsedBytes: 0, handshakes: 0, resumedHandshakes: 0 };
}

/**
 * With --cpu-prof, every process of the tree (node:cluster's workers inherit the flags) writes its
 * profile on exit into a folder of its own, `cluster-<workers>/`.
 */
function profileFlags(ctx: BenchContext, workers: number): string[] {
  if (ctx.cpuProfileDir === undefined) return [];
  const dir = join(ctx.cpuProfileDir, `cluster-${workers}`);
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', '--cpu-prof-dir', dir];
}

/** The monotonic clock in µs, the clock of V8's profiles in every process of the machine. */
const profileClockMicros = () => Number(process.hrtime.bigint() / 1000n);

/**
 * Beside each process's profile, the measured window (profile-causes.ts reads `<name>.windows.json`):
 * `node bench/profile-causes.ts <run>-profiles/cluster-2/<worker>.cpuprofile` then compares one
 * worker's CPU by cause with two workers'.
 */
function writeProfileWindows(ctx: BenchContext, workers: number, windows: [number, number][]): void {
  if (ctx.cpuProfileDir === undefined) return;
  const dir = join(ctx.cpuProfileDir, `cluster-${workers}`);
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    writeFileSync(join(dir, file.replace(/\.cpuprofile$/, '.windows.json')), JSON.stringify(windows));
  }
}

async function startCluster(ctx: BenchContext, workers: number): Promise<{ handle: ServerHandle; origin: string; pid: number }> {
  const port = await freePort();
  const config = { ...benchConfig(ctx.fixtures, port, { storage: true }), workers };
  const file = join(ctx.fixtures.dir, `cluster-${workers}.yaml`);
  writeFileSync(file, stringify(config));
  const child = spawn(process.execPath, [...MOAT_NODE_FLAGS, ...profileFlags(ctx, workers), 'src/main.ts', '--config', file], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...MOAT_ENV, MOAT_LOGGING__LEVEL: 'warn' },
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const deadline = Date.now() + 60_000;
  while ((output.match(/listening on port/g) ?? []).length < workers) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`Moat with ${workers} workers did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const handle: ServerHandle = {
    name: `moat ×${workers}`,
    ports: { public: port },
    stats: async () => treeStats(child.pid!),
    registerClient: () => Promise.reject(new Error('not used')),
    mintCodes: () => Promise.reject(new Error('not used')),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
  return { handle, origin: `https://127.0.0.1:${port}`, pid: child.pid! };
}

export async function clusterScaling(ctx: BenchContext): Promise<ScenarioResult> {
  const title = 'Moat with 1 vs 2 worker processes (workers: N), client_credentials over mTLS keep-alive';
  if (ctx.options.postgresUrl === undefined || ctx.options.redisUrl === undefined) {
    return {
      id: 'cluster',
      title,
      operation: 'request',
      rows: [],
      ratios: [],
      notes: ['skipped: needs --postgres and --redis (several workers cannot share the embedded database)'],
    };
  }
  const rows: { server: string; measurement: Measurement }[] = [];
  const notes = ['srv CPU % is the whole process tree (primary + workers); the load generator, Postgres and Redis share the same cores'];
  // Twice the keep-alive connections: enough for both workers to be busy.
  const connections = ctx.options.concurrency.keepAlive * 2;
  let fixedRate: number | undefined;
  for (const workers of [1, 2]) {
    const { handle, origin, pid } = await startCluster(ctx, workers);
    // Closed loop first, then each fixed rate: profile-causes.ts's window indexes.
    const measuredWindows: [number, number][] = [];
    const pool = createTlsPool({ origin, serverCaPem: ctx.fixtures.sandbox.serverCaPem, identity: ctx.fixtures.tpp, connections });
    try {
      // The TPP registered with the main Moat target lives in the same Postgres: no registration here.
      const request = async () => {
        await clientCredentials(pool, ctx.moat.client);
      };
      const run = loop(connections, request);
      // What the tree spends with no request at all (timers, pools, subscriptions, each worker's own):
      // divided over fewer requests per process, it is part of the CPU per request.
      const idleBefore = await handle.stats();
      await new Promise((r) => setTimeout(r, IDLE_MS));
      const idleMsPerSecond = ((await handle.stats()).cpuMicros - idleBefore.cpuMicros) / IDLE_MS;
      if (ctx.options.warmupSeconds > 0) await run(ctx.options.warmupSeconds * 1000);
      const recorder = new MeasurementRecorder();
      const topBefore = processCpuMicros(pid);
      const windowStart = profileClockMicros();
      await recorder.round(handle, () => run(ctx.options.durationSeconds * 1000));
      measuredWindows.push([windowStart, profileClockMicros()]);
      const measurement = recorder.result();
      rows.push({ server: handle.name, measurement });
      notes.push(
        `${handle.name}: ${idleMsPerSecond.toFixed(1)} ms of CPU per second idle (${(idleMsPerSecond / measurement.throughput).toFixed(3)} ms per request at the measured rate)`,
      );
      // With workers: 1 the top process is the worker; with more it is the cluster's primary.
      if (workers > 1) {
        const primaryMs = (processCpuMicros(pid) - topBefore) / 1000;
        notes.push(
          `${handle.name}: the primary process used ${primaryMs.toFixed(0)} ms of CPU over the measurement (${((100 * primaryMs) / (measurement.serverCpuMsPerOp * measurement.ops)).toFixed(1)} % of the tree's)`,
        );
      }
      fixedRate ??= Math.max(1, Math.round(measurement.throughput * FIXED_RATE_SHARE));
      // One worker at the rate; two at the same rate (each worker half of it) and at twice it (each
      // worker as busy as the one was).
      for (const perSecond of workers === 1 ? [fixedRate] : [fixedRate, 2 * fixedRate]) {
        const atRate = new MeasurementRecorder();
        let skipped = 0;
        const rateWindowStart = profileClockMicros();
        await atRate.round(handle, async () => {
          const result = await runFixedRate({
            perSecond,
            durationMs: ctx.options.durationSeconds * 1000,
            maxInFlight: connections,
            operation: request,
          });
          skipped = result.skipped;
          return result;
        });
        measuredWindows.push([rateWindowStart, profileClockMicros()]);
        rows.push({ server: `${handle.name} at ${perSecond}/s`, measurement: atRate.result() });
        if (skipped > 0) notes.push(`${handle.name} at ${perSecond}/s: ${skipped} starts skipped, ${connections} requests being in flight`);
      }
    } finally {
      await pool.close();
      await handle.stop();
    }
    if (measuredWindows.length > 0) writeProfileWindows(ctx, workers, measuredWindows);
  }
  return {
    id: 'cluster',
    title,
    operation: 'request',
    rows,
    // Issue 20: the work per request does not grow with the workers (server CPU per request within 10 %).
    ratios: [
      ratio(rows, 'moat ×2', 'moat ×1'),
      costRatio(rows, 'moat ×2', 'moat ×1', WORKERS_CPU_TARGET),
      ...(fixedRate === undefined
        ? []
        : [
            costRatio(rows, `moat ×2 at ${fixedRate}/s`, `moat ×1 at ${fixedRate}/s`),
            costRatio(rows, `moat ×2 at ${2 * fixedRate}/s`, `moat ×1 at ${fixedRate}/s`),
          ]),
    ],
    notes,
  };
}

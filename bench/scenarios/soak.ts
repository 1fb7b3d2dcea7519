import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { BenchFixtures } from '../fixtures.ts';
import { authorizationCode, clientCredentials, introspect, redeemCode } from '../load/fapi-client.ts';
import { runClosedLoop, type LoadResult } from '../load/load-generator.ts';
import type { ServerStats } from '../servers/protocol.ts';
import type { ResidentBreakdown } from '../servers/resident-memory.ts';
import { startMoatTarget } from '../targets.ts';
import type { BenchContext } from './scenario.ts';

/*
 * The memory soak: a fresh Moat under a steady mix of traffic for `--soak` seconds — TPPs taking
 * client_credentials tokens that the resource server introspects (keep-alive), TPPs taking
 * client_credentials tokens on a new mTLS connection each (resumption offered), and customers
 * completing whole flows up to the authorization_code redemption — with the process's RSS and heap
 * sampled every few seconds. Run once on the headline storage (Postgres + Redis with --postgres and
 * --redis) and, with `--variants embedded`, once more on the embedded default.
 *
 * RSS is sampled as the process has it (no collection forced for it); the heap after a full GC is
 * sampled less often, since forcing a collection changes what is measured. Tokens stay stored until
 * they expire, so memory grows at first whatever the code does: to reach a steady state inside a
 * 5-minute soak, this Moat issues tokens for 60 s (not 300 s) and purges expired entries every 30 s
 * (not 300 s); after two minutes the stored state no longer grows. The verdict is on the last half.
 */

export interface SoakSample {
  seconds: number;
  rssMiB: number;
  heapUsedMiB: number;
  /** Only on the samples that forced a full collection first. */
  heapAfterGcMiB?: number;
}

export interface SoakResult {
  /** `moat` (the headline's storage) or `moat, embedded`. */
  row: string;
  storage: string;
  seconds: number;
  tokenAndIntrospectionPairsPerSecond: number;
  newConnectionTokensPerSecond: number;
  flowsPerSecond: number;
  errors: number;
  firstError?: string;
  samples: SoakSample[];
  /** RSS before the load (after start-up and the TPP's registration), at the end, and the highest sample. */
  startRssMiB: number;
  endRssMiB: number;
  maxRssMiB: number;
  /** Where the memory is at the end: V8's heap reserved and used, and outside it (Buffers, WebAssembly). */
  end: { heapTotalMiB: number; heapUsedMiB: number; externalMiB: number; arrayBuffersMiB: number; resident?: ResidentBreakdown };
  /** What the RSS was made of at the highest sample, with V8's committed heap then (inside "other anonymous"). */
  atHighest?: { seconds: number; rssMiB: number; heapTotalMiB: number; resident: ResidentBreakdown };
  /** The verdict's window: the last half of the soak. */
  lastHalfFromSeconds: number;
  /** RSS's trend over the last half by Theil–Sen (the verdict's), and by least squares (shown beside it). */
  rssSlopeMiBPerMinute: number;
  rssLeastSquaresSlopeMiBPerMinute: number;
  heapAfterGcSlopeMiBPerMinute: number;
  /** RSS over its target (issue 20: < 250 MiB on Postgres + Redis, < 350 MiB embedded). */
  rssTargetMiB: number;
  flat: boolean;
}

const SAMPLE_EVERY_MS = 3_000;
/** Every this many samples, one after a forced full collection (the heap's leak check). */
const GC_SAMPLE_EVERY = 5;
export const SOAK_TUNING = { tokens: { accessTokenTtl: 60, clientCredentialsTtl: 60 }, purgeIntervalSeconds: 30 };
/**
 * Flat: over the last half, RSS grows by at most 2 MiB/min (Theil–Sen; a leak of 100 bytes per request at
 * this load shows as ~2–3 MiB/min; allocator and JIT noise stays below) and the heap after a full
 * collection by at most 1 MiB/min.
 */
export const FLAT_RSS_SLOPE_MIB_PER_MIN = 2;
export const FLAT_HEAP_SLOPE_MIB_PER_MIN = 1;
/** Issue 20's RSS targets. */
export const RSS_TARGET_MIB = { services: 250, embedded: 350 };

const MiB = 1024 * 1024;
const mib = (bytes: number | undefined) => Number(((bytes ?? 0) / MiB).toFixed(1));

/**
 * Theil–Sen slope of y over x: the median of the slopes between every two points. RSS is judged by
 * it because a 3 s sample catches, now and then, a sign-in's password check (19 MiB each, one per
 * core, freed when it ends): a least-squares line leans on those few high samples, and read growth
 * of 3.7–3.9 MiB/min in soaks whose RSS between them rose by 1–2 (2026-12-07 21:14 and 21:20,
 * bench/README.md); the median of the pairwise slopes does not move for a few outliers, and still
 * follows a rise that lifts every sample.
 */
function theilSenSlope(points: [number, number][]): number {
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const dx = points[j]![0] - points[i]![0];
      if (dx !== 0) slopes.push((points[j]![1] - points[i]![1]) / dx);
    }
  }
  if (slopes.length === 0) return 0;
  slopes.sort((a, b) => a - b);
  const middle = slopes.length >> 1;
  return slopes.length % 2 === 1 ? slopes[middle]! : (slopes[middle - 1]! + slopes[middle]!) / 2;
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

/** Its own data directory (a copy of the run's sandbox): the first Moat still holds the embedded database. */
function soakFixtures(f: BenchFixtures, name: string): BenchFixtures {
  const dataDir = join(f.dir, `${name}-data`);
  cpSync(join(f.dataDir, 'sandbox'), join(dataDir, 'sandbox'), { recursive: true });
  return { ...f, dataDir };
}

async function soakOne(ctx: BenchContext, embedded: boolean): Promise<SoakResult> {
  const { options } = ctx;
  const name = embedded ? 'moat-soak-embedded' : 'moat-soak';
  const onServices = !embedded && options.postgresUrl !== undefined && options.redisUrl !== undefined;
  const storage = embedded
    ? 'embedded PGlite + in-process store'
    : [options.postgresUrl === undefined ? 'embedded PGlite' : 'Postgres', options.redisUrl === undefined ? 'in-process store' : 'Redis'].join(' + ');
  const target = await startMoatTarget(soakFixtures(ctx.fixtures, name), {
    name,
    tuning: SOAK_TUNING,
    ...(embedded ? { embedded: true } : {}),
    ...(ctx.cpuProfileDir === undefined ? {} : { cpuProfileDir: ctx.cpuProfileDir }),
  });
  const pairConnections = Math.max(2, options.concurrency.keepAlive - 6);
  const tpp = target.tppPool(pairConnections + 2);
  const rs = target.resourceServerPool(pairConnections);
  const newConnections = target.tppPool(2, { resumeSessions: true });
  const browser = target.browserPool(2);
  const durationMs = options.soakSeconds * 1000;
  const samples: SoakSample[] = [];
  const before = await target.server.stats();
  const started = performance.now();
  let running = true;
  let last: ServerStats = before;
  let atHighest: SoakResult['atHighest'];
  const sample = async (collectGarbage: boolean) => {
    // Every sample reads the process's smaps as well, to say what the highest RSS was made of.
    const stats = await target.server.stats({ residentBreakdown: true });
    const sampled: SoakSample = {
      seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
      rssMiB: mib(stats.rssBytes),
      heapUsedMiB: mib(stats.heapUsedBytes),
    };
    if (stats.resident !== undefined && sampled.rssMiB > (atHighest?.rssMiB ?? 0)) {
      atHighest = { seconds: sampled.seconds, rssMiB: sampled.rssMiB, heapTotalMiB: mib(stats.heapTotalBytes), resident: stats.resident };
    }
    if (collectGarbage) sampled.heapAfterGcMiB = mib((await target.server.stats({ collectGarbage: true })).heapUsedBytes);
    samples.push(sampled);
    last = stats;
  };
  try {
    const sampler = (async () => {
      while (running) {
        await sample(samples.length % GC_SAMPLE_EVERY === 0);
        await sleep(SAMPLE_EVERY_MS);
      }
    })();
    const [pairs, fresh, flows] = (await Promise.all([
      runClosedLoop({
        concurrency: pairConnections,
        durationMs,
        operation: async () => {
          const { access_token: token } = await clientCredentials(tpp, target.client);
          await introspect(rs, ctx.fixtures.resourceServer.clientId, String(token));
        },
      }),
      runClosedLoop({
        concurrency: 2,
        durationMs,
        operation: async () => {
          await clientCredentials(newConnections, target.client, { reset: true });
        },
      }),
      runClosedLoop({
        concurrency: 2,
        durationMs,
        operation: async () => {
          const { code, codeVerifier } = await authorizationCode({ tpp, browser }, target.origin, target.client);
          await redeemCode(tpp, target.client, code, codeVerifier);
        },
      }),
    ])) as [LoadResult, LoadResult, LoadResult];
    running = false;
    await sampler;
    await sample(true);

    const lastHalfFrom = options.soakSeconds / 2;
    const lastHalf = samples.filter((s) => s.seconds >= lastHalfFrom);
    const rssPoints = lastHalf.map((s): [number, number] => [s.seconds, s.rssMiB]);
    const rssSlope = theilSenSlope(rssPoints) * 60;
    const heapSlope = slope(lastHalf.filter((s) => s.heapAfterGcMiB !== undefined).map((s) => [s.seconds, s.heapAfterGcMiB!])) * 60;
    const firstError = pairs.firstError ?? fresh.firstError ?? flows.firstError;
    const perSecond = (r: LoadResult, digits: number) => Number((r.ops / (r.elapsedMs / 1000)).toFixed(digits));
    return {
      row: embedded ? 'moat, embedded' : 'moat',
      storage,
      seconds: options.soakSeconds,
      tokenAndIntrospectionPairsPerSecond: perSecond(pairs, 1),
      newConnectionTokensPerSecond: perSecond(fresh, 1),
      flowsPerSecond: perSecond(flows, 2),
      errors: pairs.errors + fresh.errors + flows.errors,
      ...(firstError === undefined ? {} : { firstError }),
      samples,
      startRssMiB: mib(before.rssBytes),
      endRssMiB: samples.at(-1)!.rssMiB,
      maxRssMiB: Math.max(...samples.map((s) => s.rssMiB)),
      end: {
        heapTotalMiB: mib(last.heapTotalBytes),
        heapUsedMiB: mib(last.heapUsedBytes),
        externalMiB: mib(last.externalBytes),
        arrayBuffersMiB: mib(last.arrayBuffersBytes),
        ...(last.resident === undefined ? {} : { resident: last.resident }),
      },
      ...(atHighest === undefined ? {} : { atHighest }),
      lastHalfFromSeconds: lastHalfFrom,
      rssSlopeMiBPerMinute: Number(rssSlope.toFixed(2)),
      rssLeastSquaresSlopeMiBPerMinute: Number((slope(rssPoints) * 60).toFixed(2)),
      heapAfterGcSlopeMiBPerMinute: Number(heapSlope.toFixed(2)),
      rssTargetMiB: onServices ? RSS_TARGET_MIB.services : RSS_TARGET_MIB.embedded,
      flat: rssSlope <= FLAT_RSS_SLOPE_MIB_PER_MIN && heapSlope <= FLAT_HEAP_SLOPE_MIB_PER_MIN,
    };
  } finally {
    running = false;
    await Promise.all([tpp.close(), rs.close(), newConnections.close(), browser.close()]);
    await target.server.stop();
  }
}

/** The soak on the headline's storage and, with `--variants embedded` on Postgres + Redis, on the embedded default. */
export async function soak(ctx: BenchContext): Promise<SoakResult[]> {
  const results = [await soakOne(ctx, false)];
  const headlineEmbedded = ctx.options.postgresUrl === undefined && ctx.options.redisUrl === undefined;
  if (ctx.options.variants.includes('embedded') && !headlineEmbedded) results.push(await soakOne(ctx, true));
  return results;
}

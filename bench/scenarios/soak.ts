import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { BenchFixtures } from '../fixtures.ts';
import { authorizationCode, clientCredentials, introspect, redeemCode } from '../load/fapi-client.ts';
import { runClosedLoop, type LoadResult } from '../load/load-generator.ts';
import { startMoatTarget } from '../targets.ts';
import type { BenchContext } from './scenario.ts';

/*
 * The RSS soak: a fresh Moat under a steady mixed load for `--soak` seconds — TPPs taking
 * client_credentials tokens that the resource server introspects, and customers completing whole
 * flows — with RSS and the heap after a full GC sampled every few seconds.
 *
 * Tokens stay stored until they expire, so memory grows at first whatever the code does. To reach a
 * steady state inside a 5-minute soak, this Moat issues tokens for 60 s (not 300 s) and purges
 * expired entries every 30 s (not 300 s); after two minutes the stored state no longer grows, and
 * any further growth is a leak.
 */

export interface SoakSample {
  seconds: number;
  rssMiB: number;
  heapAfterGcMiB: number;
}

export interface SoakResult {
  seconds: number;
  tokenAndIntrospectionPairsPerSecond: number;
  flowsPerSecond: number;
  errors: number;
  firstError?: string;
  samples: SoakSample[];
  /** Growth between the end of the warm-up and the end, and the fitted slope over that window. */
  steadyFromSeconds: number;
  rssGrowthMiB: number;
  rssSlopeMiBPerMinute: number;
  heapGrowthMiB: number;
  heapSlopeMiBPerMinute: number;
  flat: boolean;
}

const SAMPLE_EVERY_MS = 5_000;
export const SOAK_TUNING = { tokens: { accessTokenTtl: 60, clientCredentialsTtl: 60 }, purgeIntervalSeconds: 30 };
/** Flat: after the warm-up RSS grows by no more than this share (allocator noise, JIT code). */
const FLAT_RSS_GROWTH = 0.05;

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
function soakFixtures(f: BenchFixtures): BenchFixtures {
  const dataDir = join(f.dir, 'soak-data');
  cpSync(join(f.dataDir, 'sandbox'), join(dataDir, 'sandbox'), { recursive: true });
  return { ...f, dataDir };
}

export async function soak(ctx: BenchContext): Promise<SoakResult> {
  const { options } = ctx;
  const target = await startMoatTarget(soakFixtures(ctx.fixtures), {
    name: 'moat-soak',
    tuning: SOAK_TUNING,
    ...(ctx.cpuProfileDir === undefined ? {} : { cpuProfileDir: ctx.cpuProfileDir }),
  });
  const MiB = 1024 * 1024;
  const tppConnections = Math.max(2, options.concurrency.keepAlive - 4);
  const tpp = target.tppPool(tppConnections + 2);
  const rs = target.resourceServerPool(tppConnections);
  const browser = target.browserPool(2);
  const durationMs = options.soakSeconds * 1000;
  const samples: SoakSample[] = [];
  const started = performance.now();
  let running = true;
  try {
    const sampler = (async () => {
      while (running) {
        const stats = await target.server.stats({ collectGarbage: true, ...(samples.length === 0 ? { mark: 'start' as const } : {}) });
        samples.push({
          seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
          rssMiB: Number((stats.rssBytes / MiB).toFixed(1)),
          heapAfterGcMiB: Number((stats.heapUsedBytes / MiB).toFixed(1)),
        });
        await sleep(SAMPLE_EVERY_MS);
      }
    })();
    const [pairs, flows] = (await Promise.all([
      runClosedLoop({
        concurrency: tppConnections,
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
          const { code, codeVerifier } = await authorizationCode({ tpp, browser }, target.origin, target.client);
          await redeemCode(tpp, target.client, code, codeVerifier);
        },
      }),
    ])) as [LoadResult, LoadResult];
    running = false;
    await sampler;
    const final = await target.server.stats({ collectGarbage: true, mark: 'end' });
    samples.push({
      seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
      rssMiB: Number((final.rssBytes / MiB).toFixed(1)),
      heapAfterGcMiB: Number((final.heapUsedBytes / MiB).toFixed(1)),
    });

    // Steady state: the stored tokens' lifetime plus a purge interval after the start (or a third of a short soak).
    const steadyFrom = Math.round(Math.min(SOAK_TUNING.tokens.accessTokenTtl + 2 * SOAK_TUNING.purgeIntervalSeconds, options.soakSeconds / 3));
    const steady = samples.filter((s) => s.seconds >= steadyFrom);
    const first = steady[0] ?? samples[0]!;
    const last = samples.at(-1)!;
    const rssGrowth = last.rssMiB - first.rssMiB;
    const firstError = pairs.firstError ?? flows.firstError;
    return {
      seconds: options.soakSeconds,
      tokenAndIntrospectionPairsPerSecond: Number((pairs.ops / (pairs.elapsedMs / 1000)).toFixed(1)),
      flowsPerSecond: Number((flows.ops / (flows.elapsedMs / 1000)).toFixed(2)),
      errors: pairs.errors + flows.errors,
      ...(firstError === undefined ? {} : { firstError }),
      samples,
      steadyFromSeconds: steadyFrom,
      rssGrowthMiB: Number(rssGrowth.toFixed(1)),
      rssSlopeMiBPerMinute: Number((slope(steady.map((s) => [s.seconds, s.rssMiB])) * 60).toFixed(2)),
      heapGrowthMiB: Number((last.heapAfterGcMiB - first.heapAfterGcMiB).toFixed(1)),
      heapSlopeMiBPerMinute: Number((slope(steady.map((s) => [s.seconds, s.heapAfterGcMiB])) * 60).toFixed(2)),
      flat: rssGrowth <= FLAT_RSS_GROWTH * first.rssMiB,
    };
  } finally {
    running = false;
    await Promise.all([tpp.close(), rs.close(), browser.close()]);
    await target.server.stop();
  }
}

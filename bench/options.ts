import { parseArgs } from 'node:util';

/*
 * Command-line options of `npm run bench` (flags win over the BENCH_* environment variables).
 */

export const SCENARIOS = [
  'token-code',
  'token-cc',
  'new-conn-tls12',
  'new-conn-tls13',
  'fapi-flow',
  'introspect',
  'gateway-check',
  'floors',
  'jws',
  'cluster',
  'soak',
] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

export interface BenchOptions {
  /** Measured seconds per scenario and server. */
  durationSeconds: number;
  /** Unmeasured seconds before each measurement (JIT, caches, connection set-up). */
  warmupSeconds: number;
  /** Requests (or flows) in flight at once, per kind of load. */
  concurrency: { keepAlive: number; newConnection: number; flow: number };
  scenarios: ScenarioId[];
  /** Seconds of the RSS soak; 0 when not soaking. */
  soakSeconds: number;
  postgresUrl?: string;
  redisUrl?: string;
  /** Write a V8 CPU profile of every server process (node --cpu-prof) next to the results. */
  cpuProfile: boolean;
  /** Secondary Moat rows on token-code, token-cc and introspect: `sandbox` (call journal on), `embedded` (PGlite + in-process store). */
  variants: ('sandbox' | 'embedded')[];
  /** Moat records every TPP call for /diagnostics/calls, as sandbox mode does by default (off: as production runs). */
  callJournal: boolean;
  outDir: string;
}

export const USAGE = `usage: npm run bench -- [options]
  --duration <s>        measured seconds per scenario and server (default 10; BENCH_DURATION)
  --warmup <s>          unmeasured warm-up seconds before each measurement (default 3)
  --only <a,b,...>      run only these scenarios: ${SCENARIOS.join(', ')}
  --soak <s>            also run the RSS soak for this many seconds (e.g. 300)
  --connections <n>     requests in flight on keep-alive scenarios (default 16)
  --postgres <url>      Moat on this Postgres server (a throwaway database is created; BENCH_POSTGRES_URL)
  --redis <url>         Moat on this Redis (a throwaway key prefix; BENCH_REDIS_URL)
  --cpu-prof            write a CPU profile of each server process and print where its time goes
  --call-journal        Moat records each TPP call for /diagnostics/calls (sandbox's default; off, as in production, unless given)
  --variants <a,b>      also measure these Moats as secondary rows of token-code, token-cc and introspect:
                        sandbox (its call journal on), embedded (PGlite + in-process store)
  --out <dir>           where results go (default bench/results)`;

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: expected a number of seconds or a count, got "${value}"`);
  return n;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      only: { type: 'string' },
      soak: { type: 'string' },
      connections: { type: 'string' },
      postgres: { type: 'string' },
      redis: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'call-journal': { type: 'boolean' },
      variants: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';

  const soakSeconds = positive('--soak', values.soak, 0);
  let scenarios: ScenarioId[] = SCENARIOS.filter((s) => s !== 'soak' || soakSeconds > 0);
  if (values.only !== undefined) {
    const asked = values.only
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const unknown = asked.filter((s) => !(SCENARIOS as readonly string[]).includes(s));
    if (unknown.length > 0) throw new Error(`--only: unknown scenario ${unknown.join(', ')} (known: ${SCENARIOS.join(', ')})`);
    // Always in the usual order: the soak last, after the comparisons it would otherwise disturb.
    scenarios = SCENARIOS.filter((s) => asked.includes(s));
  }
  if (scenarios.includes('soak') && soakSeconds === 0) throw new Error('--only soak needs --soak <seconds>');
  const keepAlive = positive('--connections', values.connections, 16);

  const variants = (values.variants ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknownVariant = variants.filter((v) => v !== 'sandbox' && v !== 'embedded');
  if (unknownVariant.length > 0) throw new Error(`--variants: unknown ${unknownVariant.join(', ')} (known: sandbox, embedded)`);
  const postgresUrl = values.postgres ?? env.BENCH_POSTGRES_URL;
  const redisUrl = values.redis ?? env.BENCH_REDIS_URL;
  return {
    durationSeconds: positive('--duration', values.duration ?? env.BENCH_DURATION, 10),
    warmupSeconds: positive('--warmup', values.warmup, 3),
    concurrency: { keepAlive, newConnection: 16, flow: 8 },
    scenarios,
    soakSeconds,
    ...(postgresUrl === undefined || postgresUrl === '' ? {} : { postgresUrl }),
    ...(redisUrl === undefined || redisUrl === '' ? {} : { redisUrl }),
    cpuProfile: values['cpu-prof'] === true,
    callJournal: values['call-journal'] === true,
    variants: variants as BenchOptions['variants'],
    outDir: values.out ?? 'bench/results',
  };
}

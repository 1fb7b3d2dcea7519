import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createFixtures } from './fixtures.ts';
import { parseOptions, USAGE, type ScenarioId } from './options.ts';
import { formatProfileSummary, summariseProfile } from './profile-summary.ts';
import { checkTargets, formatReport, machine, type BenchReport } from './report.ts';
import { clusterScaling } from './scenarios/cluster.ts';
import { fapiFlow } from './scenarios/fapi-flow.ts';
import { keepAliveFloor } from './scenarios/floors.ts';
import { gatewayCheck } from './scenarios/gateway-check.ts';
import { introspection } from './scenarios/introspection.ts';
import { jwsSigningRates, type JwsRate } from './scenarios/jws.ts';
import type { BenchContext, ScenarioResult } from './scenarios/scenario.ts';
import { soak, type SoakResult } from './scenarios/soak.ts';
import { authorizationCodeGrant, clientCredentialsGrant, newConnectionPerRequest } from './scenarios/token-endpoint.ts';
import { spawnServer, type ServerHandle } from './servers/server-handle.ts';
import { startBaselineTarget, startMoatTarget, type Target } from './targets.ts';

/*
 * `npm run bench`: starts Moat, the bare oidc-provider baseline and the raw floors on loopback, each
 * in its own process; runs each scenario against each in turn; prints a table and writes JSON to
 * bench/results/<timestamp>.json. See bench/README.md.
 */

const COMPARISONS: Partial<Record<ScenarioId, (ctx: BenchContext) => Promise<ScenarioResult>>> = {
  'token-code': authorizationCodeGrant,
  'token-cc': clientCredentialsGrant,
  'new-conn-tls12': (ctx) => newConnectionPerRequest(ctx, 'TLSv1.2'),
  'new-conn-tls13': (ctx) => newConnectionPerRequest(ctx, 'TLSv1.3'),
  'fapi-flow': fapiFlow,
  introspect: introspection,
  'gateway-check': gatewayCheck,
  floors: keepAliveFloor,
  cluster: clusterScaling,
};

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const options = parsed;
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const outDir = resolve(options.outDir);
  mkdirSync(outDir, { recursive: true });
  const cpuProfileDir = options.cpuProfile ? join(outDir, `${stamp}-profiles`) : undefined;
  if (cpuProfileDir !== undefined) mkdirSync(cpuProfileDir, { recursive: true });
  const spawnOptions = cpuProfileDir === undefined ? {} : { cpuProfileDir };

  const storage = [options.postgresUrl === undefined ? 'embedded PGlite' : 'Postgres', options.redisUrl === undefined ? 'in-process store' : 'Redis'].join(
    ' + ',
  );
  log(`setting up (Moat on ${storage})`);
  const fixtures = await createFixtures(options);
  const servers: ServerHandle[] = [];
  const shutdown = async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    await fixtures.close();
  };
  process.once('SIGINT', () => {
    void shutdown().finally(() => process.exit(130));
  });

  try {
    const moat = await startMoatTarget(fixtures, spawnOptions);
    servers.push(moat.server);
    const baseline = await startBaselineTarget(fixtures, moat.client, spawnOptions);
    servers.push(baseline.server);
    // Secondary rows: the headline is production's request path on the storage given; these show
    // what sandbox mode's call journal and the embedded default cost on the same requests.
    const variants: Target[] = [];
    for (const variant of options.variants) {
      const target = await startMoatTarget(fixtures, {
        ...spawnOptions,
        name: `moat-${variant}`,
        ...(variant === 'sandbox' ? { row: 'moat, sandbox (call journal)', callJournal: true } : { row: 'moat, embedded', embedded: true }),
      });
      servers.push(target.server);
      variants.push(target);
    }
    let floors: Promise<ServerHandle> | undefined;
    const ctx: BenchContext = {
      options,
      fixtures,
      moat,
      baseline,
      variants,
      ...(cpuProfileDir === undefined ? {} : { cpuProfileDir }),
      floors: () => {
        floors ??= spawnServer('floors', { kind: 'floors', dataDir: fixtures.dataDir }, spawnOptions).then((s) => {
          servers.push(s);
          return s;
        });
        return floors;
      },
    };

    const scenarios: ScenarioResult[] = [];
    let jws: JwsRate[] | undefined;
    let soaked: SoakResult[] | undefined;
    for (const id of options.scenarios) {
      log(`${id}…`);
      const comparison = COMPARISONS[id];
      if (comparison !== undefined) scenarios.push(await comparison(ctx));
      else if (id === 'jws') jws = await jwsSigningRates(ctx);
      else if (id === 'soak') soaked = await soak(ctx);
    }

    await Promise.all(servers.splice(0).map((s) => s.stop()));
    const profiles =
      cpuProfileDir === undefined
        ? undefined
        : readdirSync(cpuProfileDir)
            .filter((f) => f.endsWith('.cpuprofile'))
            .map((f) => summariseProfile(join(cpuProfileDir, f)));

    const report: BenchReport = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      command: `node bench/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
      machine: machine(),
      options,
      storage,
      scenarios,
      ...(jws === undefined ? {} : { jws }),
      ...(soaked === undefined ? {} : { soak: soaked }),
      targets: checkTargets(scenarios, soaked),
      ...(profiles === undefined ? {} : { profiles }),
    };
    const file = join(outDir, `${stamp}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`${formatReport(report)}\n`);
    for (const p of profiles ?? []) process.stdout.write(`\n${formatProfileSummary(p)}\n`);
    process.stdout.write(`\nresults: ${file}\n`);
    return 0;
  } finally {
    await shutdown();
  }
}

process.exitCode = await main();

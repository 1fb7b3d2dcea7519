import { cpus, release, totalmem } from 'node:os';
import type { Ratio, ScenarioResult } from './scenarios/scenario.ts';
import type { JwsRate } from './scenarios/jws.ts';
import type { ResidentBreakdown } from './servers/resident-memory.ts';
import { FLAT_HEAP_SLOPE_MIB_PER_MIN, FLAT_RSS_SLOPE_MIB_PER_MIN, type SoakResult } from './scenarios/soak.ts';
import type { ProfileSummary } from './profile-summary.ts';
import type { BenchOptions } from './options.ts';

/*
 * The results of a run: a table on stdout, and the same (with every latency percentile, the soak's
 * samples and the CPU profiles' summaries) as JSON.
 */

export interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  met: boolean;
}

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; kernel: string; node: string; openssl: string };
  options: BenchOptions;
  storage: string;
  scenarios: ScenarioResult[];
  jws?: JwsRate[];
  soak?: SoakResult[];
  targets: TargetCheck[];
  profiles?: ProfileSummary[];
}

export function machine(): BenchReport['machine'] {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    kernel: release(),
    node: process.versions.node,
    openssl: process.versions.openssl,
  };
}

const percent = (r: number) => `${(100 * r).toFixed(1)} %`;

/** The issue's targets, checked against what was measured. */
export function checkTargets(scenarios: ScenarioResult[], soaks: SoakResult[] | undefined): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const withTarget = (r: Ratio): r is Ratio & { target: number } => r.target !== undefined;
  for (const scenario of scenarios) {
    for (const r of scenario.ratios.filter(withTarget)) {
      checks.push({ name: `${scenario.id}: ${r.label} (${r.kind})`, target: `≥ ${percent(r.target)}`, measured: percent(r.value), met: r.value >= r.target });
    }
  }
  for (const soak of soaks ?? []) {
    checks.push({
      name: `soak ${soak.seconds} s, ${soak.row} (${soak.storage}): highest RSS`,
      target: `< ${soak.rssTargetMiB} MiB`,
      measured: `${soak.maxRssMiB} MiB (start ${soak.startRssMiB}, end ${soak.endRssMiB})`,
      met: soak.maxRssMiB < soak.rssTargetMiB,
    });
    checks.push({
      name: `soak ${soak.seconds} s, ${soak.row}: RSS and heap after GC over the last half`,
      target: `flat (≤ ${FLAT_RSS_SLOPE_MIB_PER_MIN} and ≤ ${FLAT_HEAP_SLOPE_MIB_PER_MIN} MiB/min)`,
      measured: `${soak.rssSlopeMiBPerMinute} and ${soak.heapAfterGcSlopeMiBPerMinute} MiB/min`,
      met: soak.flat,
    });
  }
  return checks;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatReport(report: BenchReport): string {
  const out: string[] = [];
  const m = report.machine;
  out.push(`Moat benchmark — ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, node ${m.node}, OpenSSL ${m.openssl}`);
  out.push(
    `Moat storage: ${report.storage}; call journal ${report.options.callJournal ? 'on (--call-journal)' : 'off (as in production)'}; ${report.options.durationSeconds} s measured per server after ${report.options.warmupSeconds} s warm-up; started ${report.startedAt}`,
  );
  out.push('');
  const rows: string[][] = [];
  for (const s of report.scenarios) {
    for (const { server, measurement: r } of s.rows) {
      rows.push([
        s.id,
        server,
        r.throughput.toFixed(1),
        r.latencyMs.p50.toFixed(2),
        r.latencyMs.p99.toFixed(2),
        r.serverCpuPercent.toFixed(0),
        r.serverCpuMsPerOp.toFixed(3),
        r.clientCpuPercent.toFixed(0),
        r.rssMiB.toFixed(0),
        String(r.errors),
        r.handshakes === 0 ? '-' : `${r.resumedPercent.toFixed(0)}`,
      ]);
    }
  }
  out.push(table(['scenario', 'server', 'ops/s', 'p50 ms', 'p99 ms', 'srv CPU %', 'srv CPU ms/op', 'gen CPU %', 'RSS MiB', 'errors', 'resumed %'], rows));
  out.push('(srv/gen CPU %: server process / load generator, % of one core; srv CPU ms/op: server CPU time per operation)');
  out.push('');
  out.push("ratios (throughput: ops/s over ops/s; cpu-cost: the other side's server CPU per op over this side's):");
  for (const s of report.scenarios) {
    for (const r of s.ratios)
      out.push(
        `  ${s.id.padEnd(15)} ${r.label.padEnd(32)} ${r.kind.padEnd(10)} ${percent(r.value).padStart(8)}${r.target === undefined ? '' : `   target ≥ ${percent(r.target)}: ${r.value >= r.target ? 'met' : 'NOT met'}`}`,
      );
  }
  for (const s of report.scenarios) for (const note of s.notes ?? []) out.push(`  note ${s.id}: ${note}`);
  for (const s of report.scenarios) {
    for (const row of s.rows)
      if (row.measurement.firstError !== undefined)
        out.push(`  ! ${s.id} ${row.server}: ${row.measurement.errors} errors, first: ${row.measurement.firstError}`);
  }
  if (report.jws !== undefined) {
    out.push('');
    out.push(
      table(
        ['JWS (jose)', 'default', 'signs/s, 1 at a time', 'signs/s, 8 at once'],
        report.jws.map((j) => [j.alg, j.configured ? 'yes' : '', String(j.sequentialPerSecond), String(j.parallelPerSecond)]),
      ),
    );
  }
  for (const s of report.soak ?? []) {
    out.push('');
    out.push(
      `soak, ${s.row} (${s.storage}): ${s.seconds} s, ${s.tokenAndIntrospectionPairsPerSecond} client_credentials+introspection pairs/s, ${s.newConnectionTokensPerSecond} client_credentials/s on new connections, ${s.flowsPerSecond} flows/s, ${s.errors} errors${s.firstError === undefined ? '' : ` (first: ${s.firstError})`}`,
    );
    out.push(
      `  RSS MiB: ${s.samples
        .filter((_, i) => i % 10 === 0)
        .map((x) => `${x.seconds.toFixed(0)}s=${x.rssMiB.toFixed(0)}`)
        .join(' ')} … end=${s.endRssMiB.toFixed(0)}`,
    );
    out.push(
      `  RSS start ${s.startRssMiB}, end ${s.endRssMiB}, max ${s.maxRssMiB} MiB (target < ${s.rssTargetMiB}); at the end heap ${s.end.heapUsedMiB} used of ${s.end.heapTotalMiB}, external ${s.end.externalMiB} (ArrayBuffers ${s.end.arrayBuffersMiB}) MiB`,
    );
    const made = (r: ResidentBreakdown) =>
      `WebAssembly memory ${r.webAssemblyMemoryMiB}, JIT code ${r.jitCodeMiB}, files ${r.filesMiB}, malloc brk ${r.mallocBrkMiB}, other anonymous (V8 heap, malloc arenas, stacks) ${r.otherAnonymousMiB}`;
    if (s.atHighest !== undefined)
      out.push(
        `  resident at the highest (${s.atHighest.seconds} s, ${s.atHighest.rssMiB} MiB; V8 heap committed ${s.atHighest.heapTotalMiB}): ${made(s.atHighest.resident)}`,
      );
    if (s.end.resident !== undefined) out.push(`  resident at the end: ${made(s.end.resident)}`);
    out.push(
      `  last half (from ${s.lastHalfFromSeconds} s): RSS ${s.rssSlopeMiBPerMinute} MiB/min (Theil–Sen; least squares ${s.rssLeastSquaresSlopeMiBPerMinute}), heap after GC ${s.heapAfterGcSlopeMiBPerMinute} MiB/min: ${s.flat ? 'flat' : 'GROWING'}`,
    );
  }
  if (report.targets.length > 0) {
    out.push('');
    out.push(
      table(
        ['target', 'wanted', 'measured', 'met'],
        report.targets.map((t) => [t.name, t.target, t.measured, t.met ? 'yes' : 'NO']),
      ),
    );
  }
  return out.join('\n');
}

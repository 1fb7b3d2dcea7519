import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';

/*
 * Where a server process spent its CPU time, from a V8 profile written by `node --cpu-prof`: self
 * time grouped by package or Moat source file, and the hottest functions, counting only the samples
 * taken while the benchmark was measuring (the `.windows.json` the server process writes beside the
 * profile), so start-up, registration and code minting are left out. The same profile opens in
 * Chrome DevTools (Performance) or speedscope for the full call tree.
 *
 *   node bench/profile-summary.ts bench/results/<run>-profiles/moat.cpuprofile
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileShare {
  name: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  file: string;
  /** Whether only the measured windows were counted (start-up and preparation left out). */
  measuredWindowsOnly: boolean;
  /** Sampled time when the process was not idle, ms. */
  busyMs: number;
  byPlace: ProfileShare[];
  byFunction: ProfileShare[];
}

/** `oidc-provider`, `src/tls/client-certificate.ts`, `node:internal/tls`, or V8's own (GC, program). */
function placeOf(url: string, functionName: string): string {
  if (url === '') return `(${functionName.replace(/[()]/g, '') || 'native'})`;
  const path = url.replace(/^file:\/\//, '');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg !== null) return pkg[1]!;
  if (path.startsWith('node:')) return path.split('/').slice(0, 2).join('/');
  return relative(process.cwd(), path);
}

/** The measured windows the server process wrote next to its profile (µs, the profiler's clock), if any. */
function windowsOf(file: string): [number, number][] | undefined {
  const windowsFile = file.replace(/\.cpuprofile$/, '.windows.json');
  return existsSync(windowsFile) ? (JSON.parse(readFileSync(windowsFile, 'utf8')) as [number, number][]) : undefined;
}

export function summariseProfile(file: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const windows = windowsOf(file);
  const measured = (t: number) => windows === undefined || windows.some(([start, end]) => t >= start && t <= end);
  // Self time per node: each sample's time delta belongs to the node it sampled.
  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (measured(t)) selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });

  const places = new Map<string, number>();
  const functions = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined || node.callFrame.functionName === '(idle)') continue;
    busyUs += us;
    const place = placeOf(node.callFrame.url, node.callFrame.functionName);
    places.set(place, (places.get(place) ?? 0) + us);
    const fn = `${node.callFrame.functionName || '(anonymous)'} ${place}:${node.callFrame.lineNumber + 1}`;
    functions.set(fn, (functions.get(fn) ?? 0) + us);
  }
  const shares = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000), percent: Number(((100 * us) / busyUs).toFixed(1)) }));
  return { file, measuredWindowsOnly: windows !== undefined, busyMs: Math.round(busyUs / 1000), byPlace: shares(places), byFunction: shares(functions) };
}

export function formatProfileSummary(summary: ProfileSummary): string {
  const lines = [
    `${summary.file}: ${summary.busyMs} ms of CPU sampled (idle excluded${summary.measuredWindowsOnly ? '; measured windows only' : '; whole process'})`,
    '  self time by package / source file:',
  ];
  for (const s of summary.byPlace) lines.push(`    ${s.percent.toFixed(1).padStart(5)} %  ${s.name}`);
  lines.push('  hottest functions (self time):');
  for (const s of summary.byFunction) lines.push(`    ${s.percent.toFixed(1).padStart(5)} %  ${s.name}`);
  return lines.join('\n');
}

if (import.meta.main) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    process.stderr.write('usage: node bench/profile-summary.ts <file.cpuprofile>...\n');
    process.exitCode = 2;
  }
  for (const file of files) process.stdout.write(`${formatProfileSummary(summariseProfile(file, 25))}\n\n`);
}

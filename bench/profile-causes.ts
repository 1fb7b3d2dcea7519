import { readFileSync } from 'node:fs';

/*
 * A server's CPU profile grouped by what caused each sample — Moat's additions (the access log, the
 * threat detector, rate limits, Postgres, the Redis token store, …) apart from what bare
 * oidc-provider does too — for chosen measured windows (issue 20: "each missed target explained
 * with a profile that shows what is left"). A sample belongs to the first known frame found walking
 * up from the function it sampled: a socket write under pg's `query` is Postgres's, a write under
 * koa's `respond` is the response's.
 *
 *   node bench/profile-causes.ts <run>-profiles/moat.cpuprofile [window,window…]
 *
 * Windows are indexes into the `.windows.json` beside the profile, in the order the scenarios ran
 * (`token-code` writes one per round of codes). Without them every measured window counts.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

/** The causes, most specific first; a frame's URL decides. */
const CAUSES: [string, RegExp][] = [
  ['access log (pino, redaction, its writes)', /\/(pino|sonic-boom|@pinojs|thread-stream)\/|observability\/logger\.ts/],
  ['threat detector', /src\/threats\/|storage\/redis\/threat-state/],
  ['rate limits', /rate-limits\.ts|rate-counter-store/],
  ['audit', /src\/audit\//],
  ['metrics, tracing', /observability\/(metrics|tracing)|@opentelemetry|prom-client/],
  ['Redis model store (tokens, codes)', /redis-model-store|\/ioredis\/|\/redis-parser\/|\/denque\//],
  ['Postgres (grant, customer, refresh token, consent)', /\/pg\/|\/pg-pool\/|\/pg-protocol\/|\/pg-types\/|storage\/sql\//],
  ['in-process caches', /src\/caching\/|\/cached-/],
  ['client certificate, DN match, registry gate', /src\/tls\/|src\/pki\/|certificate-gate|mtls-outcome/],
  ['JWS signing (jose)', /\/jose\//],
  ['oidc-provider', /\/oidc-provider\//],
  ['Moat, other middleware', /\/src\//],
  ['koa, HTTP parsing, response writes', /\/(koa|koa-compose|@koa|koa-mount|co-body|raw-body|type-is|delegates|statuses|accepts|cookies)\/|_http_|http_common/],
];

export function profileCauses(file: string, windowIndexes?: number[]): { busyMs: number; causes: [string, number][] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  let windows = JSON.parse(readFileSync(file.replace(/\.cpuprofile$/, '.windows.json'), 'utf8')) as [number, number][];
  if (windowIndexes !== undefined) windows = windowIndexes.map((i) => windows[i]).filter((w): w is [number, number] => w !== undefined);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const causeOf = (id: number): string => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const url = byId.get(cur)?.callFrame.url ?? '';
      for (const [name, pattern] of CAUSES) if (pattern.test(url)) return name;
    }
    const fn = byId.get(id)?.callFrame.functionName ?? '';
    if (/^(writeUtf8String|writev|writeBuffer|writeString)$/.test(fn)) return 'socket writes with no owner on the stack';
    return `(${fn.replace(/[()]/g, '') || 'native'})`;
  };
  const us = new Map<string, number>();
  let busy = 0;
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (!windows.some(([start, end]) => t >= start && t <= end)) return;
    if (byId.get(id)?.callFrame.functionName === '(idle)') return;
    busy += delta;
    const cause = causeOf(id);
    us.set(cause, (us.get(cause) ?? 0) + delta);
  });
  return { busyMs: busy / 1000, causes: [...us].sort((a, b) => b[1] - a[1]).map(([name, v]) => [name, v / busy]) };
}

if (import.meta.main) {
  const [file, windows] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: node bench/profile-causes.ts <file.cpuprofile> [window,window…]\n');
    process.exitCode = 2;
  } else {
    const { busyMs, causes } = profileCauses(file, windows?.split(',').map(Number));
    process.stdout.write(`${file}: ${busyMs.toFixed(0)} ms of CPU sampled in the chosen windows\n`);
    for (const [name, share] of causes) if (share >= 0.01) process.stdout.write(`  ${(100 * share).toFixed(1).padStart(5)} %  ${name}\n`);
  }
}

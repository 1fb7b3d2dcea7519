import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * scripts/with-node.sh passes `npm start`'s and `npm test`'s node flags on, except `--liftoff-only`
 * on an x86-64 CPU without SSE4.1, where V8 aborts as soon as its baseline compiler meets an
 * instruction it cannot emit there (bench/servers/moat-process.ts says why the flag is there at all).
 * The CPU's flags are read from MOAT_CPUINFO here instead of /proc/cpuinfo.
 */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'moat-with-node-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs with-node.sh on a /proc/cpuinfo that lists `cpuFlags`, or (null) has no flags line at all. */
function runWith(cpuFlags: string | null): { execArgv: string[]; argv: string[]; stderr: string } {
  const cpuinfo = join(dir, `cpuinfo-${cpuFlags?.length ?? 'none'}`);
  writeFileSync(
    cpuinfo,
    cpuFlags === null ? 'processor\t: 0\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm aes\n' : `processor\t: 0\nflags\t\t: ${cpuFlags}\n`,
  );
  const script = join(dir, 'print.cjs');
  writeFileSync(script, 'console.log(JSON.stringify({ execArgv: process.execArgv, argv: process.argv.slice(2) }))');
  const stderrFile = join(dir, 'stderr');
  const out = execFileSync(
    'sh',
    ['-c', `sh scripts/with-node.sh "$@" 2>${stderrFile}`, 'sh', '--liftoff-only', '--max-semi-space-size=16', script, 'one', 'two words'],
    {
      env: { ...process.env, MOAT_CPUINFO: cpuinfo, QUIET_NODE_FOR_MOAT: '1', NODE_OPTIONS: '' },
      encoding: 'utf8',
    },
  );
  return { ...(JSON.parse(out.trim().split('\n').at(-1)!) as { execArgv: string[]; argv: string[] }), stderr: readFileSync(stderrFile, 'utf8') };
}

it('passes --liftoff-only on where the CPU has SSE4.1', () => {
  const ran = runWith('fpu sse sse2 ssse3 sse4_1 sse4_2 avx');
  expect(ran.execArgv).toEqual(['--liftoff-only', '--max-semi-space-size=16']);
  expect(ran.argv).toEqual(['one', 'two words']);
  expect(ran.stderr).not.toContain('SSE4.1');
});

(arch() === 'x64' ? it : it.skip)('leaves it out, says so, and keeps every other argument where an x86-64 CPU has none', () => {
  const ran = runWith('fpu sse sse2 ssse3');
  expect(ran.execArgv).toEqual(['--max-semi-space-size=16']);
  expect(ran.argv).toEqual(['one', 'two words']);
  expect(ran.stderr).toContain('this CPU has no SSE4.1; running without --liftoff-only');
});

it("keeps it where /proc/cpuinfo lists no x86 flags at all (an x86-64 image emulated on an ARM host sees the host's)", () => {
  const ran = runWith(null);
  expect(ran.execArgv).toEqual(['--liftoff-only', '--max-semi-space-size=16']);
  expect(ran.stderr).not.toContain('SSE4.1');
});

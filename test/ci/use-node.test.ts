import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/*
 * scripts/use-node.sh is what makes the README's two commands and .ci/run work on a machine whose
 * Node is older than 24.7 (this one ships Node 20) and that has never fetched Node 24. Both its
 * callers are tested here on exactly that machine: an old `node` first on PATH and an empty cache.
 * The "old Node" is a stand-in script that fails the version check and otherwise runs the real Node,
 * because npm itself needs a working `node` to install the new one.
 */
const realNodeDir = dirname(process.execPath);
let machine: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  machine = mkdtempSync(join(tmpdir(), 'moat-use-node-'));
  const bin = join(machine, 'old-node-bin');
  mkdirSync(bin);
  // node_ok asks `node -e <check>`; an old Node answers "no". Anything else runs the real Node, so the
  // path a later `node` resolves to is what tells which one the shell went on with.
  writeFileSync(
    join(bin, 'node'),
    `#!/bin/sh\nif [ "$1" = -e ]; then exit 1; fi\nif [ "$1" = --version ]; then echo v20.0.0; exit 0; fi\nexec "${process.execPath}" "$@"\n`,
  );
  chmodSync(join(bin, 'node'), 0o755);
  env = {
    ...process.env,
    PATH: `${bin}:${realNodeDir}:/usr/bin:/bin`,
    NODE_FOR_MOAT: join(machine, 'cache'),
    QUIET_NODE_FOR_MOAT: '1',
    NODE_OPTIONS: '',
  };
});

afterEach(() => rmSync(machine, { recursive: true, force: true }));

// Which Node ran it, and its version.
function printer(): string {
  const path = join(machine, 'print.cjs');
  writeFileSync(path, 'console.log(process.execPath, process.versions.node)');
  return path;
}

it('.ci/run: the shell that sources it goes on with the Node it fetched, not the old one on PATH', () => {
  // .ci/run sources the script and then runs npm ci, the checks and both test passes in the same bash.
  const out = execFileSync('bash', ['-c', `source scripts/use-node.sh && node ${printer()}`], { env, encoding: 'utf8' });
  const [execPath, version] = out.trim().split(' ');
  expect(execPath?.startsWith(join(machine, 'cache'))).toBe(true);
  const [major, minor] = (version ?? '').split('.').map(Number);
  expect((major ?? 0) > 24 || (major === 24 && (minor ?? 0) >= 7)).toBe(true);
}, 120_000);

it('npm start / npm test (scripts/with-node.sh, run by sh): the same', () => {
  const out = execFileSync('sh', ['scripts/with-node.sh', printer()], { env, encoding: 'utf8' });
  expect(out.trim().split(' ')[0]?.startsWith(join(machine, 'cache'))).toBe(true);
}, 120_000);

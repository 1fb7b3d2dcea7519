import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgliteCluster, EmbeddedDatabaseCreationError, holdsPgliteCluster } from '../../src/storage/sql/pglite-cluster.ts';
import { createPgliteSqlClient } from '../../src/storage/sql/sql-client.ts';

/*
 * The embedded database's first start: initdb runs in a child process (so what it touched leaves
 * with it), and later starts open the cluster it made. What that saves is measured by the bench
 * (bench/README.md, 2026-12-07), not here.
 */
const dirs: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-pglite-cluster-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const childProcesses = () => process.getActiveResourcesInfo().filter((kind) => kind === 'ProcessWrap').length;

test('a directory without a cluster gets one from a child process, replacing what interrupted creations left and keeping the lock; the next open keeps its data', async () => {
  const parent = scratch();
  const dir = join(parent, 'pglite');
  // As a start killed mid-initdb leaves it (the tests below): a build directory beside it. As
  // create-storage.ts leaves it: its lock taken, and a creation cut off before PG_VERSION moved in.
  mkdirSync(join(parent, '.pglite.initdb-Stale1', 'base'), { recursive: true });
  mkdirSync(join(dir, 'base', '1'), { recursive: true });
  writeFileSync(join(dir, 'base', '1', 'left-over'), 'half a cluster');
  writeFileSync(join(dir, 'moat.lock'), '12345');

  const before = childProcesses();
  const opening = createPgliteSqlClient(dir);
  await new Promise((resolve) => setImmediate(resolve));
  expect(childProcesses()).toBe(before + 1);
  const sql = await opening;
  expect(holdsPgliteCluster(dir)).toBe(true);
  expect(childProcesses()).toBe(before);
  expect(readdirSync(parent)).toEqual(['pglite']);
  expect(readFileSync(join(dir, 'moat.lock'), 'utf8')).toBe('12345');
  expect(existsSync(join(dir, 'base', '1', 'left-over'))).toBe(false);
  await sql.exec('CREATE TABLE kept (note text); INSERT INTO kept VALUES ($$first start$$);');
  await sql.close();

  const reopening = createPgliteSqlClient(dir);
  await new Promise((resolve) => setImmediate(resolve));
  expect(childProcesses()).toBe(before);
  const again = await reopening;
  try {
    expect((await again.query<{ note: string }>('SELECT note FROM kept')).rows).toEqual([{ note: 'first start' }]);
  } finally {
    await again.close();
  }
});

test('an initdb that does not finish is stopped and reported, and leaves nothing', async () => {
  const parent = scratch();
  const dir = join(parent, 'pglite');
  mkdirSync(dir);
  const failure = await createPgliteCluster(dir, { timeoutMs: 1 }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(failure).toBeInstanceOf(EmbeddedDatabaseCreationError);
  expect((failure as Error).message).toContain(`could not create the embedded database in ${dir}: initdb was stopped by SIGKILL (killed after 1 ms`);
  expect(readdirSync(parent)).toEqual(['pglite']);
  expect(readdirSync(dir)).toEqual([]);
});

/** The pid of a running initdb child building beside `dataDir`, from its command line. */
function initdbChildOf(dataDir: string): number | undefined {
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (args.some((arg) => arg.endsWith('pglite-cluster.ts')) && args.some((arg) => arg.startsWith(`${dataDir.replace(/pglite$/, '.pglite.initdb-')}`)))
        return Number(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}
const running = (pid: number) => existsSync(`/proc/${pid}`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

test('a start killed while initdb runs takes initdb with it', async () => {
  const parent = scratch();
  const dir = join(parent, 'pglite');
  const script = `import { createPgliteCluster } from ${JSON.stringify(join(process.cwd(), 'src/storage/sql/pglite-cluster.ts'))}; await createPgliteCluster(${JSON.stringify(dir)});`;
  const start = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  let child: number | undefined;
  for (let i = 0; i < 400 && child === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    child = initdbChildOf(dir);
  }
  expect(child).toBeDefined();
  start.kill('SIGKILL');
  for (let i = 0; i < 400 && running(child!); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  expect(running(child!)).toBe(false);
  // It stopped before finishing: initdb takes seconds, and an orphan would have written PG_VERSION.
  const [leftBehind, ...others] = readdirSync(parent);
  expect(others).toEqual([]);
  expect(leftBehind).toMatch(/^\.pglite\.initdb-/);
  expect(holdsPgliteCluster(join(parent, leftBehind!))).toBe(false);
});

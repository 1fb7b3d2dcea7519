import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

test('a directory without a cluster gets one from a child process, and the next open keeps its data', async () => {
  const dir = join(scratch(), 'pglite');
  const before = childProcesses();
  const opening = createPgliteSqlClient(dir);
  await new Promise((resolve) => setImmediate(resolve));
  expect(childProcesses()).toBe(before + 1);
  const sql = await opening;
  expect(holdsPgliteCluster(dir)).toBe(true);
  expect(childProcesses()).toBe(before);
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

test('an initdb that fails is reported with the directory and the cause, not a cluster half made', async () => {
  const dir = scratch();
  // initdb makes base/ as a directory; a file in its place stops it.
  writeFileSync(join(dir, 'base'), 'not a directory');
  const failure = await createPgliteCluster(dir).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(failure).toBeInstanceOf(EmbeddedDatabaseCreationError);
  expect((failure as Error).message).toContain(`could not create the embedded database in ${dir}: initdb exited with 1: `);
  expect(holdsPgliteCluster(dir)).toBe(false);
});

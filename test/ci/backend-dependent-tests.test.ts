import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/*
 * .ci/run's embedded pass runs only the suites scripts/backend-dependent-tests.mjs lists. A suite it
 * wrongly leaves out would lose its embedded run without anyone noticing, so the selection is
 * checked against what a suite visibly uses to pick its backend.
 */
const listed = new Set(execFileSync(process.execPath, ['scripts/backend-dependent-tests.mjs'], { encoding: 'utf8' }).split('\n').filter(Boolean));

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return testFiles(path);
    return path.endsWith('.test.ts') ? [path] : [];
  });
}

describe('the suites of the embedded pass', () => {
  it('include every suite that starts Moat through the harness or takes a throwaway database', () => {
    const direct = testFiles('test').filter((file) => /support\/(moat-harness|databases)\.ts['"]/.test(readFileSync(file, 'utf8')));
    expect(direct.length).toBeGreaterThan(50);
    expect(direct.filter((file) => !listed.has(file))).toEqual([]);
  });

  it('include a suite that reaches the backend switch only through another support module', () => {
    // audit-outage starts its own Postgres through private-postgres.ts, which imports the harness.
    const text = readFileSync('test/resilience/audit-outage.test.ts', 'utf8');
    expect(text).not.toMatch(/support\/(moat-harness|databases)\.ts['"]/);
    expect(listed.has('test/resilience/audit-outage.test.ts')).toBe(true);
  });

  it('leave out suites that never read the backend switch, so they run once', () => {
    expect(listed.has('test/pki/certificate-chain.test.ts')).toBe(false);
    expect(listed.has('test/config/load.test.ts')).toBe(false);
    expect(listed.has('test/integration/quick-start.test.ts')).toBe(true);
  });
});

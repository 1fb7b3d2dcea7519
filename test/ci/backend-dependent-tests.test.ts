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
  it('include every suite that starts Moat through the harness or picks its backend by the pass', () => {
    const direct = testFiles('test').filter((file) =>
      /support\/moat-harness\.ts['"]|\bembeddedOnly\s*\(|\bdefaultBackend\s*\(/.test(readFileSync(file, 'utf8')),
    );
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
    // quick-start starts Moat as a child on the embedded default its MOAT_* settings name, whichever the pass.
    expect(listed.has('test/integration/quick-start.test.ts')).toBe(false);
  });

  it('leave out suites that read the pass only to leave their Postgres and Redis cases out: their other cases ran on the services pass', () => {
    // sqlBackends() (PGlite always, Postgres on the services pass), a Redis backend added withServices(),
    // describeWithServices: the embedded pass would run a subset of what the services pass ran.
    for (const file of [
      'test/storage/migrations.test.ts',
      'test/storage/model-store.test.ts',
      'test/passkeys/passkey-ceremonies.test.ts',
      'test/storage/sql-transaction.test.ts',
    ]) {
      expect(readFileSync(file, 'utf8')).toMatch(/\b(sqlBackends|withServices|describeWithServices)\b/);
      expect(listed.has(file)).toBe(false);
    }
  });

  it('leave the page checks to the services pass, which runs every suite with them, and never the suite that shows they can fail', () => {
    const passes = readFileSync('.ci/run', 'utf8')
      .split('\n')
      .filter((line) => /^\S.*\bnpm test\b/.test(line));
    expect(passes).toHaveLength(2);
    expect(passes[0]).not.toContain('TEST_MOAT_PAGE_CHECKS');
    expect(passes[0]).not.toContain('--runTestsByPath');
    expect(passes[1]).toMatch(/^TEST_MOAT_EMBEDDED_ONLY=1 TEST_MOAT_PAGE_CHECKS=first-pass npm test /);
    // test/e2e/page-checks.test.ts shows each check failing on a bad page: with the checks off it would fail.
    expect(listed.has('test/e2e/page-checks.test.ts')).toBe(false);
  });

  it('can leave those out because databases.ts reads the switch only in embeddedOnly(), and calls that only to leave services cases out', () => {
    // The code without its comments (which name these functions).
    const text = readFileSync('test/support/databases.ts', 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    expect(text.match(/TEST_MOAT_EMBEDDED_ONLY/g)).toHaveLength(1);
    expect(text).toMatch(/export function embeddedOnly\(\): boolean \{\n {2}return process\.env\.TEST_MOAT_EMBEDDED_ONLY === '1';\n\}/);
    // The one call: withServices(), which the narrowing helpers (describeWithServices, sqlBackends) use.
    expect(text.match(/\bembeddedOnly\(\)(?!: boolean)/g)).toHaveLength(1);
    expect(text).toMatch(/export function withServices\(\): boolean \{\n {2}return !embeddedOnly\(\);\n\}/);
    expect(text).toMatch(/describeWithServices: jest\.Describe = withServices\(\) \? describe : describe\.skip;/);
  });
});

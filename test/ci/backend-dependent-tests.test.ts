import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

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

interface JestProject {
  displayName: string;
  testMatch: string[];
  setupFiles?: string[];
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

  it('run in CI as the embedded project of the same Jest run, with the page checks left to the services project, and never the suite that shows they can fail', async () => {
    // .ci/run runs the tests once, with both passes as Jest projects (jest.config.js).
    const runs = readFileSync('.ci/run', 'utf8')
      .split('\n')
      .filter((line) => /^\S.*\bnpm test\b/.test(line));
    expect(runs).toEqual(['TEST_MOAT_REQUIRE_SERVICES=1 TEST_MOAT_PASSES=services+embedded npm test -- --ci --maxWorkers=3']);
    const { ciPasses } = (await import(pathToFileURL(resolve('jest.config.js')).href)) as { ciPasses(): JestProject[] };
    const [services, embedded] = ciPasses();
    expect(services!.displayName).toBe('services');
    expect(services!.testMatch).toEqual(['<rootDir>/test/**/*.test.ts']);
    expect(services!.setupFiles).toBeUndefined();
    expect(embedded!.displayName).toBe('embedded');
    expect(new Set(embedded!.testMatch.map((glob) => glob.replace('<rootDir>/', '')))).toEqual(listed);
    expect(embedded!.setupFiles).toEqual(['<rootDir>/test/support/embedded-pass.ts']);
    const setup = readFileSync('test/support/embedded-pass.ts', 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .trim();
    expect(setup).toBe("process.env.TEST_MOAT_EMBEDDED_ONLY = '1';\nprocess.env.TEST_MOAT_PAGE_CHECKS = 'first-pass';");
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

#!/usr/bin/env node
/*
 * Prints the test files whose behaviour can depend on the storage backend of the run: those whose
 * imports (followed through test/ and src/, statically and dynamically) reach a module that picks a
 * backend by TEST_MOAT_EMBEDDED_ONLY, which is the only thing CI's second pass changes (the harness's
 * defaultBackend() in test/support/moat-harness.ts, or any other read of embeddedOnly() or the
 * variable; src/ never reads it, so a child Moat a test starts gets its backend from the configuration
 * the test wrote). The other suites answer the same on both passes, so .ci/run's embedded pass runs
 * only these and the suite is not run twice for nothing (issue 15 §6).
 *
 * test/support/databases.ts defines the switch; there it is read only by withServices(), which only
 * leaves cases on Postgres and Redis out of the embedded pass (describeWithServices, sqlBackends, a
 * contract suite's Redis backend). A suite that reads the pass only that way runs, on the embedded
 * pass, a subset of the tests it ran on the services pass (its PGlite and in-process cases ran there
 * too), so it is not listed. test/ci/backend-dependent-tests.test.ts checks databases.ts keeps to that.
 *
 *   node scripts/backend-dependent-tests.mjs            one path per line
 *   node scripts/backend-dependent-tests.mjs --explain  the suites left out of the embedded pass
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');
const BACKEND_SWITCH = /TEST_MOAT_EMBEDDED_ONLY|\bembeddedOnly\s*\(|\bdefaultBackend\s*\(/;
// Where the switch is defined and read only to leave services cases out (see above).
const SWITCH_DEFINITION = join(ROOT, 'test', 'support', 'databases.ts');
const RELATIVE_IMPORT = /(?:\bfrom|\bimport)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g;

function testFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return testFiles(path);
    return path.endsWith('.test.ts') ? [path] : [];
  });
}

const sources = new Map();
function source(file) {
  if (!sources.has(file)) sources.set(file, readFileSync(file, 'utf8'));
  return sources.get(file);
}

function readsBackendSwitch(testFile) {
  const seen = new Set();
  const pending = [testFile];
  while (pending.length > 0) {
    const file = pending.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const text = source(file);
    if (file !== SWITCH_DEFINITION && BACKEND_SWITCH.test(text)) return true;
    for (const [, specifier] of text.matchAll(RELATIVE_IMPORT)) {
      const target = resolve(dirname(file), specifier);
      if (existsSync(target) && statSync(target).isFile()) pending.push(target);
    }
  }
  return false;
}

const all = testFiles(join(ROOT, 'test')).sort();
const dependent = all.filter(readsBackendSwitch);
if (process.argv.includes('--explain')) {
  const rest = all.filter((file) => !dependent.includes(file));
  process.stdout.write(`${dependent.length} of ${all.length} suites depend on the backend; run once only:\n`);
  for (const file of rest) process.stdout.write(`  ${relative(ROOT, file)}\n`);
} else {
  for (const file of dependent) process.stdout.write(`${relative(ROOT, file)}\n`);
}

import { execFileSync } from 'node:child_process';

// Jest runs the TypeScript sources through SWC (type stripping only; `npm run typecheck` is the
// type check) as native ESM, which oidc-provider 9 requires (see .npmrc / --experimental-vm-modules).
const project = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', {
      jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
      module: { type: 'es6' },
    }],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
};

/*
 * TEST_MOAT_PASSES=services,embedded (CI, .ci/run): one Jest run holding both of CI's passes as two
 * projects, so their suites share one pool of workers and the longest-first order (issue 15 §6)
 * instead of the second pass starting only once the first's last suite has ended.
 * - services: every suite, on the machine's Postgres and Redis (TEST_MOAT_REQUIRE_SERVICES=1 there).
 * - embedded: the suites whose behaviour can depend on the backend (scripts/backend-dependent-tests.mjs
 *   says which and why), again on the embedded default. Its setup file sets TEST_MOAT_EMBEDDED_ONLY=1
 *   in each of its suites' own copy of the environment (Jest gives every test file its own
 *   process.env), which is exactly what the separate `TEST_MOAT_EMBEDDED_ONLY=1 npm test` did.
 */
function projects() {
  const passes = process.env.TEST_MOAT_PASSES;
  if (passes === undefined) return undefined;
  if (passes !== 'services,embedded') throw new Error(`TEST_MOAT_PASSES must be "services,embedded", not "${passes}"`);
  if (process.env.TEST_MOAT_REQUIRE_SERVICES !== '1') throw new Error('TEST_MOAT_PASSES=services,embedded needs TEST_MOAT_REQUIRE_SERVICES=1 (the services project must not fall back to the embedded default)');
  const dependent = execFileSync(process.execPath, ['scripts/backend-dependent-tests.mjs'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  if (dependent.length === 0) throw new Error('no backend-dependent suite found; the embedded pass would run nothing');
  return [
    { ...project, displayName: 'services' },
    {
      ...project,
      displayName: 'embedded',
      testMatch: dependent.map((path) => `<rootDir>/${path}`),
      setupFiles: ['<rootDir>/test/support/embedded-pass.ts'],
    },
  ];
}

const passes = projects();

export default {
  ...project,
  ...(passes === undefined ? {} : { projects: passes }),
  testTimeout: 60000,
  // A suite that fails in beforeAll can leave a socket or timer behind; the run must end with its
  // verdict, never wait on the leak until CI's time limit (it did once).
  forceExit: true,
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  // Longest suites first, also on a fresh clone with no Jest cache (issue 15 §6).
  testSequencer: '<rootDir>/test/support/test-sequencer.ts',
};

import { execFileSync } from 'node:child_process';

// Jest runs the TypeScript sources through SWC (type stripping only; `npm run typecheck` is the
// type check) as native ESM, which oidc-provider 9 requires (see .npmrc / --experimental-vm-modules).
const suites = {
  rootDir: import.meta.dirname,
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

const run = {
  testTimeout: 60000,
  // A suite that fails in beforeAll can leave a socket or timer behind; the run must end with its
  // verdict, never wait on the leak until CI's time limit (it did once).
  forceExit: true,
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  // Longest suites first, also on a fresh clone with no Jest cache (issue 15 §6).
  testSequencer: '<rootDir>/test/support/test-sequencer.ts',
};

/*
 * CI's two passes as one Jest run (TEST_MOAT_PASSES=services+embedded, .ci/run): every suite on
 * Postgres and Redis, and again on the embedded default the suites whose backend the pass decides
 * (scripts/backend-dependent-tests.mjs), with the page checks left to the first
 * (test/support/embedded-pass.ts). One pool of workers takes the longest suites of both first, so
 * neither pass ends on a tail of one busy worker while the others idle, and Jest starts once.
 */
export function ciPasses() {
  const dependent = execFileSync(process.execPath, ['scripts/backend-dependent-tests.mjs'], { cwd: import.meta.dirname, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
  if (dependent.length === 0) throw new Error('jest.config.js: no backend-dependent suite found; the embedded pass would run nothing');
  return [
    { ...suites, displayName: 'services' },
    {
      ...suites,
      displayName: 'embedded',
      testMatch: dependent.map((file) => `<rootDir>/${file}`),
      setupFiles: ['<rootDir>/test/support/embedded-pass.ts'],
    },
  ];
}

export default process.env.TEST_MOAT_PASSES === 'services+embedded' ? { rootDir: import.meta.dirname, ...run, projects: ciPasses() } : { ...suites, ...run };

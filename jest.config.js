// Jest runs the TypeScript sources through SWC (type stripping only; `npm run typecheck` is the
// type check) as native ESM, which oidc-provider 9 requires (see .npmrc / --experimental-vm-modules).
// `npm test` starts Jest with `--liftoff-only`, as Moat itself is started (bench/servers/moat-process.ts
// says why), and Jest's workers inherit it: without it every worker that opens the embedded database
// (PGlite) has V8 spend ~2.7 s of CPU and 600 MB optimising one Postgres function. Five embedded
// suites on two workers (`TEST_MOAT_EMBEDDED_ONLY=1`, 2026-12-08): 32.4 and 32.3 CPU-s without it,
// 24.5 and 25.3 with it; peak RSS 0.99 and 0.97 GB against 0.62 and 0.67.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', {
      jsc: { parser: { syntax: 'typescript' }, target: 'es2023' },
      module: { type: 'es6' },
    }],
  },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  testTimeout: 60000,
  // A suite that fails in beforeAll can leave a socket or timer behind; the run must end with its
  // verdict, never wait on the leak until CI's time limit (it did once).
  forceExit: true,
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  // Longest suites first, also on a fresh clone with no Jest cache (issue 15 §6).
  testSequencer: '<rootDir>/test/support/test-sequencer.ts',
};

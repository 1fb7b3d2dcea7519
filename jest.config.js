// Jest runs the TypeScript sources through SWC (type stripping only; `npm run typecheck` is the
// type check) as native ESM, which oidc-provider 9 requires (see .npmrc / --experimental-vm-modules).
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

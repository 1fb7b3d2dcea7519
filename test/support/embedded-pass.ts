/*
 * The setup file of the `embedded` project (jest.config.js, TEST_MOAT_PASSES): the suite that follows
 * runs on the embedded default (PGlite + the in-process store), as under TEST_MOAT_EMBEDDED_ONLY=1.
 * Jest gives each test file its own copy of process.env, so this never reaches a `services` suite
 * that the same worker runs next.
 */
process.env.TEST_MOAT_EMBEDDED_ONLY = '1';

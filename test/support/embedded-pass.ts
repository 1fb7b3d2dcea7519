/*
 * Set before each suite of the embedded project in CI's one run (jest.config.js, ciPasses): the
 * suite runs on the embedded default (PGlite + in-process store, databases.ts's embeddedOnly()), as
 * `npm start` does on a fresh machine, and leaves the page checks to the services project, which
 * judged every page from the same templates and data (page-checks.ts says why). Jest gives each
 * suite its own copy of process.env, so the services project's suites in the same worker never see
 * these.
 */
process.env.TEST_MOAT_EMBEDDED_ONLY = '1';
process.env.TEST_MOAT_PAGE_CHECKS = 'first-pass';

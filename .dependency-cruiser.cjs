/*
 * The direction of Moat's dependencies, enforced by `npm run lint:deps` in CI (see the README's
 * "Architecture" section): kernel ← pki ← observability ← everything else, no folder pair importing
 * each other, SQL and Redis clients only in src/storage/, and no runtime code that reaches into the
 * tests, the CLI or the dev dependencies.
 */
const below = (folder, allowed) => ({
  name: `${folder}-only-below`,
  comment: `src/${folder}/ may import only ${allowed.length ? allowed.map((f) => `src/${f}/`).join(', ') : 'nothing of src/'}: it sits below the rest.`,
  severity: 'error',
  from: { path: `^src/${folder}/` },
  to: { path: '^src/', pathNot: `^src/(${[folder, ...allowed].join('|')})/` },
});

module.exports = {
  forbidden: [
    {
      name: 'no-folder-cycles',
      comment: 'Two folders of src/ that import each other have no direction; move the shared piece down.',
      severity: 'error',
      scope: 'folder',
      from: { path: '^src/' },
      to: { circular: true },
    },
    below('kernel', []),
    below('pki', ['kernel']),
    below('observability', ['kernel', 'pki']),
    {
      name: 'storage-clients-only-in-storage',
      comment:
        'Only src/storage/ speaks SQL or Redis: a feature owns the interface of its store, src/storage/ implements it over the SQL client, pg, PGlite or ioredis, and server.ts (or a CLI command, through storage factories) wires one into the other.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/storage/' },
      to: { path: ['^src/storage/sql/sql-client\\.ts$', '(^|/)node_modules/(pg|ioredis|@electric-sql/pglite)/'] },
    },
    {
      name: 'optional-packages-loaded-lazily',
      comment:
        'acme-client, undici and @simplewebauthn/server weigh ~8 MiB of heap together and most deployments never use them: ' +
        'only a dynamic import() where the feature is configured or first used; their types by `import()` type queries (issue 20 §6).',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/acme/acme-issuer\\.ts$' },
      to: { path: '(^|/)node_modules/(acme-client|undici|@simplewebauthn/server)/', dependencyTypesNot: ['dynamic-import', 'type-only'] },
    },
    {
      name: 'acme-issuer-loaded-lazily',
      comment:
        'src/acme/acme-issuer.ts imports acme-client statically, so it is itself imported only by a dynamic import() where acme is enabled. ' +
        'dependency-cruiser cannot tell `import type` from an import with TypeScript 7.0: types come by `import()` type queries instead.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/acme/acme-issuer\\.ts$', dependencyTypesNot: ['dynamic-import', 'type-only'] },
    },
    {
      name: 'cli-on-top',
      comment: 'The CLI drives the server; nothing the server runs imports the CLI.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(cli/|main\\.ts$)' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'server-on-top',
      comment: 'server.ts wires storage into services; features do not import it.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(cli/|main\\.ts$|app\\.ts$|server\\.ts$|cluster/)' },
      to: { path: '^src/server\\.ts$' },
    },
    {
      name: 'no-tests-in-src',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-dev-dep',
      comment: 'What the server runs must be in dependencies, not devDependencies.',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-orphans',
      comment: 'A module nothing imports is dead code (entry points excepted).',
      severity: 'error',
      from: { orphan: true, path: '^src/', pathNot: ['^src/(main|app)\\.ts$', '^src/cli/main\\.ts$', '\\.d\\.ts$'] },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};

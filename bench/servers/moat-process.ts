/*
 * How Moat's process is started in production, so the benchmark's Moat processes run the same way:
 * the Dockerfile's ENTRYPOINT and `npm start` pass these node flags and this environment
 * (test/deploy/deployment-manifests.test.ts keeps the three in step).
 *
 * - `--max-semi-space-size=2`: V8's young generation grows to 2 × 32 MiB by default under a steady
 *   allocation rate and stays there; Moat's requests allocate short-lived objects only, and 2 MiB
 *   semi-spaces cut RSS by ~100 MiB under load (issue 20: < 250 MiB) with no CPU cost per request
 *   that the benchmark could tell from its noise (bench/README.md, 2026-12-06).
 * - `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates (libuv's pool running scrypt and
 *   WebCrypto, V8's compiler threads, PGlite's compilation) its own 64 MiB arena, whose freed pages
 *   stay in RSS; two arenas are enough for a process with one JavaScript thread.
 */
export const MOAT_NODE_FLAGS = ['--max-semi-space-size=2'] as const;
export const MOAT_ENV = { MALLOC_ARENA_MAX: '2' } as const;

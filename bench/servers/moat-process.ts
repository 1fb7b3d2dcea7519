/*
 * How Moat's process is started in production, so the benchmark's Moat processes run the same way:
 * the Dockerfile's ENTRYPOINT and `npm start` pass these node flags and this environment
 * (test/deploy/deployment-manifests.test.ts keeps the three in step).
 *
 * - `--max-semi-space-size=16 --heap-growing-percent=30`: the young generation may grow to 16 MiB
 *   semi-spaces, so a request's short-lived objects mostly die there (at 2 MiB, introspection spent a
 *   fifth of its CPU in the collector, promoting what 16 requests in flight still held); the old
 *   generation is collected when it has grown 30 % past what survived the last full collection,
 *   instead of V8's multiple, which is what held RSS up under load. Against the earlier
 *   `--max-semi-space-size=2` alone, in a 5-minute soak on Postgres + Redis: highest RSS 289 → 261 MiB,
 *   end 242 → 199 MiB, and the benchmark's CPU per request no worse (bench/README.md, 2026-12-07).
 * - `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates (libuv's pool hashing passwords and
 *   WebCrypto, V8's compiler threads, PGlite's compilation) its own 64 MiB arena, whose freed pages
 *   stay in RSS; two arenas are enough for a process with one JavaScript thread.
 * - `MALLOC_MMAP_THRESHOLD_=131072`: glibc's own default, fixed. Left alone, glibc raises the
 *   threshold to the size of each mmapped block freed (up to 32 MiB), so after the first large
 *   allocation is freed the next ones come from the arenas and their pages stay in RSS when freed;
 *   setting it turns that adjustment off (mallopt(3), M_MMAP_THRESHOLD). A 2-minute embedded soak:
 *   highest RSS 513 → 415 MiB, end 452 → 351 MiB (bench/README.md, 2026-12-07).
 * - `--liftoff-only`: WebAssembly stays in V8's baseline compiler. The embedded database (PGlite) is
 *   Postgres compiled to WebAssembly, and one of its functions, once hot, took TurboFan 2.7 s of CPU
 *   and 600 MB of compiler memory on a background thread (`--trace-wasm-compilation-times`), a few
 *   seconds after start: in a 5-minute soak the embedded default peaked at 445 MiB without the flag
 *   and at 305 and 319 MiB with it (two runs), and its queries cost about the same in baseline code (authorization_code redemption, which
 *   writes to PGlite, ~7 % more CPU; client_credentials the same). `--no-wasm-tier-up` does not stop
 *   that tier-up in this V8. On Postgres + Redis no WebAssembly is on the request path (undici's
 *   HTTP parser for outgoing calls is the only other module). The flag makes V8 abort where Liftoff
 *   cannot compile, which on x86-64 happens without SSE4.1 (before ~2011, QEMU's qemu64 model):
 *   scripts/with-node.sh, which `npm start` and the image's ENTRYPOINT run, leaves it out on such a CPU.
 */
export const MOAT_NODE_FLAGS = ['--max-semi-space-size=16', '--heap-growing-percent=30', '--liftoff-only'] as const;
export const MOAT_ENV = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' } as const;

/*
 * Creating the embedded database's cluster (initdb) in a child process, on the first start only.
 *
 * PGlite runs initdb in WebAssembly inside the process that opens the cluster, and what initdb
 * touches stays in that process: opening a cluster PGlite had just created left the process ~45 MiB
 * larger than opening the same cluster on a later start (186 against 233 MiB after a garbage
 * collection, a bare PGlite with Moat's flags). A worker thread does not help (245 MiB: its
 * allocations stay in this process's malloc arenas); a child process returns all of it to the
 * system when it exits, at the cost of one more Node start and WebAssembly compilation (~0.6 s, once).
 * Issue 20: the embedded default under 350 MiB. While it runs, the child itself peaks near 700 MiB
 * of RSS, so a first start needs that much memory to spare: it keeps PGlite's WebAssembly in V8's
 * baseline compiler when Moat's own process does (`--liftoff-only`: bench/servers/moat-process.ts),
 * since TurboFan's compilation of Postgres's hottest functions took it to 1.1 GiB and 7.8 s of CPU
 * (4.9 s without it; `/usr/bin/time -f %M node [--liftoff-only] src/storage/sql/pglite-cluster.ts <dir>`).
 *
 * The child builds the cluster in a sibling directory; only a finished one is moved in, PG_VERSION
 * last, since PGlite (and `holdsPgliteCluster`) take PG_VERSION to mean a cluster is there.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';

const THIS_MODULE = fileURLToPath(import.meta.url);
const VERSION_FILE = 'PG_VERSION';
/** initdb takes 3–5 s on a 2-core VM; far longer means it is stuck, and start-up should say so. */
const DEFAULT_TIMEOUT_MS = 120_000;

/** Whether `dataDir` holds a Postgres cluster (initdb writes PG_VERSION). */
export function holdsPgliteCluster(dataDir: string): boolean {
  return existsSync(join(dataDir, VERSION_FILE));
}

export class EmbeddedDatabaseCreationError extends Error {
  constructor(dataDir: string, detail: string, options?: { cause?: unknown }) {
    super(`could not create the embedded database in ${dataDir}: ${detail}`, options);
    this.name = 'EmbeddedDatabaseCreationError';
  }
}

/**
 * Runs PGlite's initdb in a child Node process and puts the cluster it made into `dataDir`. The
 * caller holds the directory's lock (create-storage.ts), so nothing else opens it meanwhile; what an
 * interrupted creation left there (without PG_VERSION) is replaced, the lock file kept.
 */
export async function createPgliteCluster(dataDir: string, options: { timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const parent = dirname(dataDir);
  const prefix = `.${basename(dataDir)}.initdb-`;
  let building: string;
  try {
    // Left by a start killed while its child ran; under the lock no other creation is under way.
    for (const stale of readdirSync(parent).filter((name) => name.startsWith(prefix))) rmSync(join(parent, stale), { recursive: true, force: true });
    building = mkdtempSync(join(parent, prefix));
  } catch (err) {
    throw new EmbeddedDatabaseCreationError(dataDir, `could not make a directory beside it: ${(err as Error).message}`, { cause: err });
  }
  try {
    await runInitdbChild(dataDir, building, timeoutMs);
    // PG_VERSION last: until it is in place, a later start sees no cluster and builds one again.
    const entries = readdirSync(building).sort((a, b) => Number(a === VERSION_FILE) - Number(b === VERSION_FILE));
    for (const entry of entries) {
      rmSync(join(dataDir, entry), { recursive: true, force: true });
      renameSync(join(building, entry), join(dataDir, entry));
    }
  } finally {
    rmSync(building, { recursive: true, force: true });
  }
}

/**
 * The child compiles WebAssembly as this process does: with `--liftoff-only` where Moat was started
 * with it (npm start, the image), which scripts/with-node.sh decides, once, for the CPU it runs on
 * (V8 aborts with it on an x86-64 CPU without SSE4.1).
 */
const WASM_COMPILER_FLAGS = process.execArgv.filter((flag) => flag === '--liftoff-only');

async function runInitdbChild(dataDir: string, building: string, timeoutMs: number): Promise<void> {
  // NODE_OPTIONS is the operator's for Moat (an inspector port, a tracing agent), not for initdb.
  const { NODE_OPTIONS: _notForInitdb, ...env } = process.env;
  let child: ChildProcess;
  try {
    // The IPC channel tells the child when this process is gone, so an interrupted start leaves no initdb running.
    child = spawn(process.execPath, [...WASM_COMPILER_FLAGS, THIS_MODULE, building], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env,
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
  } catch (err) {
    throw new EmbeddedDatabaseCreationError(dataDir, `could not start ${process.execPath}: ${(err as Error).message}`, { cause: err });
  }
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    // The end says what went wrong; keep a bounded tail.
    stderr = (stderr + chunk).slice(-4000);
  });
  const { code, signal } = await exit.catch((err: unknown) => {
    throw new EmbeddedDatabaseCreationError(dataDir, `could not start ${process.execPath}: ${(err as Error).message}`, { cause: err });
  });
  const said = stderr.trim() === '' ? '' : `: ${stderr.trim()}`;
  if (signal !== null) {
    const why = signal === 'SIGKILL' ? ` (killed after ${timeoutMs} ms, or for want of memory)` : '';
    throw new EmbeddedDatabaseCreationError(dataDir, `initdb was stopped by ${signal}${why}${said}`);
  }
  if (code !== 0) throw new EmbeddedDatabaseCreationError(dataDir, `initdb exited with ${code}${said}`);
  if (!holdsPgliteCluster(building)) throw new EmbeddedDatabaseCreationError(dataDir, `initdb finished without writing ${VERSION_FILE}${said}`);
}

/** PGlite's file-system errors carry an errno and no message. */
function describeFailure(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const { name, message, errno } = err as { name?: unknown; message?: unknown; errno?: unknown };
  const parts = [typeof name === 'string' ? name : 'Error', typeof message === 'string' && message !== '' ? message : undefined];
  return parts.filter((part) => part !== undefined).join(': ') + (errno === undefined ? '' : ` (errno ${String(errno)})`);
}

// The child: build the cluster, close it, exit; a failure as one line on stderr, for the parent's error.
if (process.argv[1] === THIS_MODULE) {
  const parentGone = () => process.exit(1);
  process.on('disconnect', parentGone);
  try {
    const dir = process.argv[2];
    if (dir === undefined) throw new Error('usage: pglite-cluster.ts <directory>');
    const db = await PGlite.create(dir);
    await db.close();
  } catch (err) {
    process.stderr.write(`${describeFailure(err).replaceAll('\n', ' ')}\n`);
    process.exitCode = 1;
  } finally {
    // Done: the open channel would keep this process alive.
    process.off('disconnect', parentGone);
    process.disconnect?.();
  }
}

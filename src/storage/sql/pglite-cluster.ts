/*
 * Creating the embedded database's cluster (initdb) in a child process, on the first start only.
 *
 * PGlite runs initdb in WebAssembly inside the process that opens the cluster, and what initdb
 * touches stays in that process: opening a cluster PGlite had just created left the process ~45 MiB
 * larger than opening the same cluster on a later start (186 against 233 MiB after a garbage
 * collection, a bare PGlite with Moat's flags). A worker thread does not help (245 MiB: its
 * allocations stay in this process's malloc arenas); a child process returns all of it to the
 * system when it exits, at the cost of one more Node start and WebAssembly compilation (~0.6 s, once).
 * Issue 20: the embedded default under 350 MiB.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { PGlite } from '@electric-sql/pglite';

const THIS_MODULE = fileURLToPath(import.meta.url);

/** Whether `dataDir` already holds a Postgres cluster (initdb writes PG_VERSION). */
export function holdsPgliteCluster(dataDir: string): boolean {
  return existsSync(join(dataDir, 'PG_VERSION'));
}

export class EmbeddedDatabaseCreationError extends Error {
  constructor(dataDir: string, detail: string) {
    super(`could not create the embedded database in ${dataDir}: ${detail}`);
    this.name = 'EmbeddedDatabaseCreationError';
  }
}

/**
 * Runs PGlite's initdb on `dataDir` in a child Node process and waits for it to exit. The caller
 * holds the directory's lock (create-storage.ts), so nothing else opens it meanwhile.
 */
export async function createPgliteCluster(dataDir: string): Promise<void> {
  const child = spawn(process.execPath, [THIS_MODULE, dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    // The end says what went wrong; keep a bounded tail.
    stderr = (stderr + chunk).slice(-4000);
  });
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  }).catch((err: unknown) => {
    throw new EmbeddedDatabaseCreationError(dataDir, `could not start ${process.execPath}: ${(err as Error).message}`);
  });
  if (exit.code !== 0 || !holdsPgliteCluster(dataDir)) {
    const how = exit.signal !== null ? `killed by ${exit.signal}` : `exited with ${exit.code}`;
    throw new EmbeddedDatabaseCreationError(dataDir, `initdb ${how}${stderr.trim() === '' ? '' : `: ${stderr.trim()}`}`);
  }
}

// The child: create the cluster, close it, exit; a failure as one line on stderr, which the parent
// puts in its error.
if (process.argv[1] === THIS_MODULE) {
  try {
    const dataDir = process.argv[2];
    if (dataDir === undefined) throw new Error('usage: pglite-cluster.ts <dataDir>');
    const db = await PGlite.create(dataDir);
    await db.close();
  } catch (err) {
    process.stderr.write(`${inspect(err, { breakLength: Number.POSITIVE_INFINITY })}\n`);
    process.exitCode = 1;
  }
}

import { accessSync, chmodSync, constants, mkdtempSync, readdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * Where a test run writes its throwaway files (issue 15 §6). Every harness on the embedded default
 * copies a migrated PGlite cluster (40 MB in ~1,100 files) and removes it afterwards; on this VM's
 * ext4 the copy alone took ~1 s of kernel time (53 % of an embedded harness's start, profiled), on
 * tmpfs 0.07 s. So a run's scratch goes to /dev/shm where that is a writable tmpfs (Linux), or where
 * TEST_MOAT_SCRATCH says; elsewhere to the system's temp directory.
 *
 * global-setup.ts makes one directory per run under that root and points TMPDIR at it, so every
 * mkdtemp of the tests — and of the servers, browsers and tools they start — lands there, and
 * global-teardown.ts removes it whatever a failed test left behind. Migrated templates (databases.ts)
 * are kept beside the runs, since they are worth keeping from one run to the next.
 */

const TMPFS_MAGIC = 0x01021994;
const RUN_PREFIX = 'moat-test-run-';
/** What a run or template left for longer than this (a killed run, an old migration set) is removed. */
const STALE_MS = 24 * 60 * 60 * 1000;

/** The directory runs and templates are kept under; fixed for the run once global-setup.ts chose it. */
export function scratchRoot(): string {
  const chosen = process.env.TEST_MOAT_SCRATCH_ROOT ?? process.env.TEST_MOAT_SCRATCH;
  if (chosen !== undefined && chosen !== '') return chosen;
  try {
    if (statfsSync('/dev/shm').type === TMPFS_MAGIC) {
      accessSync('/dev/shm', constants.W_OK);
      return '/dev/shm';
    }
  } catch {
    // No /dev/shm (macOS, Windows) or not ours to write: the system's temp directory.
  }
  return tmpdir();
}

/** Called by global-setup.ts: this run's own scratch directory, the root's stale leftovers removed. */
export function startRunScratch(): { root: string; runDir: string } {
  const root = scratchRoot();
  for (const name of readdirSync(root)) {
    if (!name.startsWith(RUN_PREFIX) && !name.startsWith('moat-pglite-template-')) continue;
    try {
      if (Date.now() - statSync(join(root, name)).mtimeMs > STALE_MS) rmSync(join(root, name), { recursive: true, force: true });
    } catch {
      // Taken by another run meanwhile.
    }
  }
  const runDir = mkdtempSync(join(root, RUN_PREFIX));
  // Open to every user, sticky, as /tmp is: a private Postgres a test starts runs as the postgres user.
  chmodSync(runDir, 0o1777);
  return { root, runDir };
}

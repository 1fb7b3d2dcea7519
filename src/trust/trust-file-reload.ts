import { statSync, type Stats } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';

/*
 * Trust material read from files — the TPP trust anchors, directory JWKS files, operator CRLs — is
 * re-read when a file changes while Moat runs, so a PKI team publishing a new CA, a directory
 * rotating its keys or a new CRL needs no restart. Each file is stat'ed every interval and loaded
 * only when it changed (inode, size or times; a file replaced by rename counts). A file that no
 * longer reads or validates keeps the last good material in use, is logged naming the file, and
 * shows as failing in the metrics until a good one is back: never half-loaded, never no trust at all.
 */

export const TRUST_FILE_KINDS = ['trust_anchors', 'directory_jwks', 'operator_crl'] as const;
export type TrustFileKind = (typeof TRUST_FILE_KINDS)[number];

export interface TrustFile {
  kind: TrustFileKind;
  file: string;
  /**
   * Reads, validates and puts the file's material in use; throws (changing nothing) when it cannot.
   * Absent for material whose user re-reads it itself (operator CRLs): only its age is watched.
   */
  reload?: () => void | Promise<void>;
}

export interface TrustFileReloader {
  /** Checks every file now; resolves once changed ones are reloaded (or refused). */
  checkNow(): Promise<{ reloaded: string[]; failed: string[] }>;
  start(): void;
  stop(): void;
}

interface Watched extends TrustFile {
  /** The version of the file whose material is in use. */
  version: string;
  /** When that version was last modified (the age is measured from it). */
  modifiedAt: number;
  /** Why the file on disk now cannot be used; undefined when the material in use is the file's. */
  problem?: string;
}

const versionOf = (stats: Stats) => `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;

export function createTrustFileReloader(deps: {
  files: readonly TrustFile[];
  logger: Logger;
  metrics: Registry;
  intervalSeconds: number;
  now?: () => number;
}): TrustFileReloader {
  const now = deps.now ?? (() => Date.now());
  // The files were read at start-up just before this: their current versions are the ones in use.
  const watched: Watched[] = deps.files.map((f) => {
    const stats = statSync(f.file);
    return { ...f, version: versionOf(stats), modifiedAt: stats.mtimeMs };
  });
  let timer: NodeJS.Timeout | undefined;
  let checking: Promise<{ reloaded: string[]; failed: string[] }> | undefined;

  // Every worker reads the same files: a cluster reports the oldest (max).
  new Gauge({
    name: 'moat_trust_file_age_seconds',
    help: 'Seconds since the trust file in use (trust anchors, directory JWKS, operator CRL) was last modified',
    labelNames: ['kind', 'file'],
    registers: [deps.metrics],
    aggregator: 'max',
    collect() {
      this.reset();
      for (const w of watched) this.set({ kind: w.kind, file: w.file }, Math.max(0, Math.floor((now() - w.modifiedAt) / 1000)));
    },
  });
  new Gauge({
    name: 'moat_trust_file_reload_failing',
    help: '1 while a changed trust file cannot be loaded (the last good material stays in use), else 0',
    labelNames: ['kind', 'file'],
    registers: [deps.metrics],
    aggregator: 'max',
    collect() {
      this.reset();
      for (const w of watched) this.set({ kind: w.kind, file: w.file }, w.problem === undefined ? 0 : 1);
    },
  });

  const check = async (w: Watched): Promise<'reloaded' | 'failed' | 'unchanged'> => {
    let stats: Stats;
    try {
      stats = statSync(w.file);
    } catch (err) {
      return refuse(w, `cannot read the file: ${(err as Error).message}`);
    }
    const version = versionOf(stats);
    if (version === w.version) return w.problem === undefined ? 'unchanged' : 'failed';
    try {
      await w.reload?.();
    } catch (err) {
      // Remember the version tried, so a bad file is reported once, not every interval.
      w.version = version;
      return refuse(w, (err as Error).message);
    }
    w.version = version;
    w.modifiedAt = stats.mtimeMs;
    delete w.problem;
    deps.logger.info({ event: 'trust.reloaded', kind: w.kind, file: w.file }, 'trust file changed and was reloaded');
    return 'reloaded';
  };

  const refuse = (w: Watched, problem: string): 'failed' => {
    if (w.problem !== problem) {
      deps.logger.error(
        { event: 'trust.reload_failed', kind: w.kind, file: w.file, reason: problem },
        'a changed trust file cannot be used; the last good one stays in use',
      );
    }
    w.problem = problem;
    return 'failed';
  };

  const checkNow: TrustFileReloader['checkNow'] = () => {
    checking ??= (async () => {
      const reloaded: string[] = [];
      const failed: string[] = [];
      for (const w of watched) {
        const outcome = await check(w);
        if (outcome === 'reloaded') reloaded.push(w.file);
        if (outcome === 'failed') failed.push(w.file);
      }
      return { reloaded, failed };
    })().finally(() => {
      checking = undefined;
    });
    return checking;
  };

  return {
    checkNow,
    start() {
      timer = setInterval(() => {
        void checkNow();
      }, deps.intervalSeconds * 1000);
      timer.unref();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
    },
  };
}

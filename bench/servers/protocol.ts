/*
 * The messages between the benchmark (parent) and a server process (child) over the IPC channel of
 * child_process.fork. Each server runs in its own process so that its CPU time and RSS are its own,
 * measured apart from the load generator's.
 */

import type { ResidentBreakdown } from './resident-memory.ts';

/** What a server process starts: Moat, the bare oidc-provider baseline, or the raw TLS floors. */
export type ServerSpec =
  | { kind: 'moat'; rawConfig: Record<string, unknown>; baseDir: string }
  | { kind: 'baseline'; rawConfig: Record<string, unknown>; baseDir: string }
  | { kind: 'floors'; dataDir: string };

export type Command =
  | { command: 'start'; spec: ServerSpec }
  | { command: 'stats'; collectGarbage?: boolean; mark?: WindowMark; residentBreakdown?: boolean }
  | { command: 'register-client'; metadata: Record<string, unknown> }
  | { command: 'mint-codes'; templateCode: string; count: number }
  | { command: 'stop' };

/** A measured window opens or closes: CPU profiles are summarised over the windows only. */
export type WindowMark = 'start' | 'end';

/** Where a server process writes the measured windows next to its --cpu-prof profile (env). */
export const WINDOWS_FILE_ENV = 'BENCH_PROFILE_WINDOWS_FILE';

export type Request = Command & { id: number };

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** The ports a started server process listens on, by role. */
export interface Started {
  ports: Record<string, number>;
}

/** Cumulative counters of a server process; the parent takes differences over a measurement. */
export interface ServerStats {
  /** User + system CPU time of the whole process (every thread), microseconds. */
  cpuMicros: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** V8's heap reserved, and memory held outside it (Buffers, ArrayBuffers, WebAssembly), when known. */
  heapTotalBytes?: number;
  externalBytes?: number;
  arrayBuffersBytes?: number;
  /** What the RSS is made of (resident-memory.ts), when asked for and readable. */
  resident?: ResidentBreakdown;
  /** TLS handshakes completed, and how many of them resumed a session. */
  handshakes: number;
  resumedHandshakes: number;
}

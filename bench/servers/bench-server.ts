import type { Server } from 'node:http';

/** A server started inside a server process, as the IPC loop drives it. */
export interface BenchServer {
  ports: Record<string, number>;
  /** The listeners whose TLS handshakes are counted. */
  listeners: Server[];
  /** Stores a client directly (the baseline has no registration policy to go through). */
  registerClient?(metadata: Record<string, unknown>): Promise<void>;
  /** Authorization codes cloned from a real one (see code-minting.ts). */
  mintCodes?(templateCode: string, count: number): Promise<string[]>;
  close(): Promise<void>;
}

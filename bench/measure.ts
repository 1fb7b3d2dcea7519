import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import type { LoadResult } from './load/load-generator.ts';
import type { ServerHandle } from './servers/server-handle.ts';

/*
 * One measurement of one server under one load: throughput and latency from the load generator, CPU
 * and RSS from the server process, CPU of the load generator itself (when it nears 100 % of a core,
 * the figure is the client's limit, not the server's). A measurement may be made of several rounds
 * (the authorization-code benchmark mints codes between rounds); only the rounds are counted.
 */

export interface Measurement {
  ops: number;
  errors: number;
  firstError?: string;
  seconds: number;
  /** Operations (requests, or whole flows) per second. */
  throughput: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** CPU time of the server process over the measurement, as % of one core (every thread counted). */
  serverCpuPercent: number;
  /** Server CPU time per operation, ms: the server's cost, whoever limited the throughput. */
  serverCpuMsPerOp: number;
  /** The same for the load generator (this process). */
  clientCpuPercent: number;
  /** Server process RSS at the end, MiB. */
  rssMiB: number;
  /** TLS handshakes the server completed, and the share of them that resumed a session. */
  handshakes: number;
  resumedPercent: number;
}

const MiB = 1024 * 1024;
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

export class MeasurementRecorder {
  private readonly histogram: RecordableHistogram = createHistogram();
  private ops = 0;
  private errors = 0;
  private firstError: string | undefined;
  private elapsedMs = 0;
  private serverCpuMicros = 0;
  private clientCpuMicros = 0;
  private handshakes = 0;
  private resumed = 0;
  private rssBytes = 0;

  /** Runs one round of load against `server`, counting it. */
  async round(server: ServerHandle, run: () => Promise<LoadResult>): Promise<LoadResult> {
    const before = await server.stats({ mark: 'start' });
    const clientBefore = process.cpuUsage();
    const load = await run();
    const client = process.cpuUsage(clientBefore);
    const after = await server.stats({ mark: 'end' });
    this.histogram.add(load.histogram);
    this.ops += load.ops;
    this.errors += load.errors;
    this.firstError ??= load.firstError;
    this.elapsedMs += load.elapsedMs;
    this.serverCpuMicros += after.cpuMicros - before.cpuMicros;
    this.clientCpuMicros += client.user + client.system;
    this.handshakes += after.handshakes - before.handshakes;
    this.resumed += after.resumedHandshakes - before.resumedHandshakes;
    this.rssBytes = after.rssBytes;
    return load;
  }

  result(): Measurement {
    const ms = (percentile: number) => round(this.ops === 0 ? 0 : this.histogram.percentile(percentile) / 1e6);
    const seconds = this.elapsedMs / 1000;
    return {
      ops: this.ops,
      errors: this.errors,
      ...(this.firstError === undefined ? {} : { firstError: this.firstError }),
      seconds: round(seconds),
      throughput: round(seconds === 0 ? 0 : this.ops / seconds, 1),
      latencyMs: {
        p50: ms(50),
        p90: ms(90),
        p99: ms(99),
        max: round(this.ops === 0 ? 0 : this.histogram.max / 1e6),
        mean: round(this.ops === 0 ? 0 : this.histogram.mean / 1e6),
      },
      serverCpuPercent: round(this.elapsedMs === 0 ? 0 : this.serverCpuMicros / (this.elapsedMs * 10), 1),
      serverCpuMsPerOp: round(this.ops === 0 ? 0 : this.serverCpuMicros / 1000 / this.ops, 3),
      clientCpuPercent: round(this.elapsedMs === 0 ? 0 : this.clientCpuMicros / (this.elapsedMs * 10), 1),
      rssMiB: round(this.rssBytes / MiB, 1),
      handshakes: this.handshakes,
      resumedPercent: round(this.handshakes === 0 ? 0 : (100 * this.resumed) / this.handshakes, 1),
    };
  }
}

/** Measures `run` once against `server` (the common case: one round). */
export async function measureOnce(server: ServerHandle, run: () => Promise<LoadResult>): Promise<Measurement> {
  const recorder = new MeasurementRecorder();
  await recorder.round(server, run);
  return recorder.result();
}

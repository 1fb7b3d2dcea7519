import { writeFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import type { BenchServer } from './bench-server.ts';
import { startBaseline } from './baseline-server.ts';
import { startFloors } from './floor-servers.ts';
import { startMoat } from './moat-server.ts';
import { residentBreakdown } from './resident-memory.ts';
import { WINDOWS_FILE_ENV, type Command, type Reply, type Request, type ServerSpec, type ServerStats, type Started, type WindowMark } from './protocol.ts';

/*
 * A server process: started by the benchmark with child_process.fork, it runs one server (Moat, the
 * baseline or the floors) and answers commands over IPC. Its CPU time and RSS are the server's alone.
 */

let running: BenchServer | undefined;
const handshakes = { total: 0, resumed: 0 };
/** Measured windows, [start, end] in µs of the monotonic clock V8's CPU profiler stamps samples with. */
const windows: [number, number][] = [];

function markWindow(mark: WindowMark): void {
  const now = Number(process.hrtime.bigint() / 1000n);
  if (mark === 'start') windows.push([now, Number.POSITIVE_INFINITY]);
  else if (windows.length > 0) windows[windows.length - 1]![1] = now;
}

function countHandshakes(server: BenchServer): void {
  for (const listener of server.listeners) {
    listener.on('secureConnection', (socket: TLSSocket) => {
      handshakes.total += 1;
      if (socket.isSessionReused()) handshakes.resumed += 1;
    });
  }
}

async function start(spec: ServerSpec): Promise<Started> {
  if (running !== undefined) throw new Error('this server process is already running a server');
  switch (spec.kind) {
    case 'moat':
      running = await startMoat(spec.rawConfig, spec.baseDir);
      break;
    case 'baseline':
      running = await startBaseline(spec.rawConfig, spec.baseDir);
      break;
    case 'floors':
      running = await startFloors(spec.dataDir);
      break;
  }
  countHandshakes(running);
  return { ports: running.ports };
}

function stats(collectGarbage: boolean, mark: WindowMark | undefined, breakdown: boolean): ServerStats {
  // Only with --expose-gc (the parent always passes it): the soak reads the heap after a full GC.
  if (collectGarbage) globalThis.gc?.();
  if (mark !== undefined) markWindow(mark);
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  return {
    cpuMicros: cpu.user + cpu.system,
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal,
    externalBytes: memory.external,
    arrayBuffersBytes: memory.arrayBuffers,
    // Read only when asked: /proc/self/smaps of a process with a WebAssembly runtime is long to read.
    ...(breakdown ? { resident: residentBreakdown() } : {}),
    handshakes: handshakes.total,
    resumedHandshakes: handshakes.resumed,
  };
}

function server(): BenchServer {
  if (running === undefined) throw new Error('no server started');
  return running;
}

async function handle(command: Command): Promise<unknown> {
  switch (command.command) {
    case 'start':
      return start(command.spec);
    case 'stats':
      return stats(command.collectGarbage === true, command.mark, command.residentBreakdown === true);
    case 'register-client': {
      const { registerClient } = server();
      if (registerClient === undefined) throw new Error('this server registers clients through its own endpoint');
      return registerClient(command.metadata);
    }
    case 'mint-codes': {
      const { mintCodes } = server();
      if (mintCodes === undefined) throw new Error('this server issues no authorization codes');
      return mintCodes(command.templateCode, command.count);
    }
    case 'stop': {
      await running?.close();
      running = undefined;
      const windowsFile = process.env[WINDOWS_FILE_ENV];
      if (windowsFile !== undefined) writeFileSync(windowsFile, JSON.stringify(windows.filter(([, end]) => Number.isFinite(end))));
      // The reply goes out first; exiting then writes a --cpu-prof profile, if one was asked for.
      setImmediate(() => process.exit(0));
      return undefined;
    }
  }
}

process.on('message', (message: Request) => {
  handle(message).then(
    (result) => process.send!({ id: message.id, ok: true, result } satisfies Reply),
    (err: unknown) => process.send!({ id: message.id, ok: false, error: (err as Error).stack ?? String(err) } satisfies Reply),
  );
});
// The parent went away (Ctrl-C, a crash): do not linger as an orphan holding a port.
process.on('disconnect', () => process.exit(0));

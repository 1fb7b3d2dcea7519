import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { MOAT_ENV, MOAT_NODE_FLAGS } from './moat-process.ts';
import { WINDOWS_FILE_ENV, type Command, type Reply, type ServerSpec, type ServerStats, type Started, type WindowMark } from './protocol.ts';

/*
 * The benchmark's side of a server process: fork it, start its server, and ask it for counters,
 * clients and codes over IPC.
 */

export interface ServerHandle {
  name: string;
  ports: Record<string, number>;
  stats(options?: { collectGarbage?: boolean; mark?: WindowMark; residentBreakdown?: boolean }): Promise<ServerStats>;
  registerClient(metadata: Record<string, unknown>): Promise<void>;
  mintCodes(templateCode: string, count: number): Promise<string[]>;
  /** Stops the server and waits for the process to exit (which writes its CPU profile, if any). */
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** Where the process writes a V8 CPU profile (`node --cpu-prof`), if profiling. */
  cpuProfileDir?: string;
}

export async function spawnServer(name: string, spec: ServerSpec, options: SpawnOptions = {}): Promise<ServerHandle> {
  const isMoat = spec.kind === 'moat';
  const execArgv = [
    // The soak reads the heap after a full collection.
    '--expose-gc',
    ...(options.cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir, '--cpu-prof-name', `${name}.cpuprofile`]),
    // Moat as production starts it (moat-process.ts), and experiments with node's and V8's flags
    // (BENCH_MOAT_NODE_FLAGS, after them: a later flag wins).
    ...(isMoat ? [...MOAT_NODE_FLAGS, ...(process.env.BENCH_MOAT_NODE_FLAGS ?? '').split(' ').filter(Boolean)] : []),
  ];
  // With a profile, the process also writes when the measurements were, so the summary can leave
  // start-up, registration and code minting out.
  const env = {
    ...process.env,
    ...(isMoat ? MOAT_ENV : {}),
    ...(options.cpuProfileDir === undefined ? {} : { [WINDOWS_FILE_ENV]: join(options.cpuProfileDir, `${name}.windows.json`) }),
  };
  const child: ChildProcess = fork(new URL('./server-process.ts', import.meta.url), [], { execArgv, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>();
  let nextId = 1;
  child.on('message', (reply: Reply) => {
    const waiter = pending.get(reply.id);
    pending.delete(reply.id);
    if (reply.ok) waiter?.resolve(reply.result);
    else waiter?.reject(new Error(`${name}: ${reply.error}`));
  });
  child.once('exit', (code) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${name}: the server process exited (${code})`));
    pending.clear();
  });

  const call = <T>(command: Command): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId;
      nextId += 1;
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      child.send({ ...command, id });
    });

  const { ports } = await call<Started>({ command: 'start', spec });
  return {
    name,
    ports,
    stats: (opts = {}) =>
      call<ServerStats>({
        command: 'stats',
        ...(opts.collectGarbage === true ? { collectGarbage: true } : {}),
        ...(opts.mark === undefined ? {} : { mark: opts.mark }),
        ...(opts.residentBreakdown === true ? { residentBreakdown: true } : {}),
      }),
    registerClient: (metadata) => call<void>({ command: 'register-client', metadata }),
    mintCodes: (templateCode, count) => call<string[]>({ command: 'mint-codes', templateCode, count }),
    async stop() {
      if (child.exitCode !== null) return;
      // The process exits right after its reply, which may therefore never arrive: wait for the exit.
      call<void>({ command: 'stop' }).catch(() => undefined);
      await exited;
    },
  };
}

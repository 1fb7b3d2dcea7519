import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/*
 * A redis-server of the test's own on a loopback port, keeping nothing on disk: for tests that stop
 * Redis, or that watch every command it receives (MONITOR on the shared server also shows the other
 * test workers' traffic, and ioredis can mistake a burst of it for a reply while MONITOR starts).
 */

/** The redis-server binary, or undefined where the machine has none. */
export const REDIS_SERVER: string | undefined = spawnSync('redis-server', ['--version']).error === undefined ? 'redis-server' : undefined;

export async function startRedisServer(port: number): Promise<ChildProcess> {
  if (REDIS_SERVER === undefined) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)}: ${out}`)));
  });
  return child;
}

export async function stopRedisServer(child: ChildProcess): Promise<void> {
  // Gone already: exited, or killed by a signal (exitCode stays null then).
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

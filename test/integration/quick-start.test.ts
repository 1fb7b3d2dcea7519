import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { MOAT_ENV, MOAT_NODE_FLAGS } from '../../bench/servers/moat-process.ts';
import { freePort } from '../support/ports.ts';

/*
 * The README, literally: `npm start` (here: the same `node src/main.ts` with npm start's node flags and
 * environment, and MOAT_* overrides for a free port and a private data directory) runs the sandbox on the embedded default, and the TPP
 * quick start script gets a certificate-bound token from it with the CLI and curl.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const run = promisify(execFile);

let server: ChildProcess;
let output = '';
let dir: string;
let env: NodeJS.ProcessEnv;
let issuer: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-quickstart-'));
  const port = await freePort();
  issuer = `https://localhost:${port}`;
  env = {
    ...process.env,
    ...MOAT_ENV,
    MOAT_ISSUER: issuer,
    MOAT_LISTEN__PORT: String(port),
    MOAT_LISTEN__HOST: '127.0.0.1',
    MOAT_ADMIN__PORT: '0',
    MOAT_DATA_DIR: join(dir, 'data'),
    MOAT_KEYS__DIR: join(dir, 'keys'),
  };
  server = spawn(process.execPath, [...MOAT_NODE_FLAGS, 'src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (d: Buffer) => {
    output += d.toString();
  });
  server.stderr!.on('data', (d: Buffer) => {
    output += d.toString();
  });
  // Start-up time is a benchmark's business; here a loaded CI machine must not fail the suite.
  const deadline = Date.now() + 120_000;
  while (!output.includes('listening on port') && Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`moat exited: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!output.includes('listening on port')) throw new Error(`moat did not start: ${output}`);
}, 150_000);

afterAll(async () => {
  if (server.exitCode === null) server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('npm start on a fresh checkout', () => {
  it('says it runs on the embedded default and prints the sandbox customers', () => {
    expect(output).toContain(`Moat sandbox listening on port ${new URL(issuer).port} — issuer ${issuer}`);
    expect(output).toMatch(/storage: pglite \+ memory \(embedded default/);
    expect(output).toContain('alice / alice-sandbox');
  });

  it('gets a TPP from zero to a certificate-bound token with the quick start script', async () => {
    const out = join(dir, 'acme');
    const { stdout } = await run('bash', ['scripts/sandbox-quick-start.sh', issuer, out], { cwd: ROOT, env, timeout: 60_000 });
    const summary = JSON.parse(readFileSync(join(out, 'tpp.json'), 'utf8')) as Record<string, string>;
    const introspection = JSON.parse(/introspection: (.*)/.exec(stdout)![1]!) as Record<string, unknown>;
    expect(introspection).toEqual(expect.objectContaining({ active: true, sub: 'cust-alice', cnf: { 'x5t#S256': summary['x5t#S256'] } }));
    // Issue 14: the scope-only consent shares alice's own sandbox accounts (the script posts no
    // account choice: all of them), as the account directory knows them — no made-up accounts.
    const api = JSON.parse(/sandbox API: +(.*)/.exec(stdout)![1]!) as { data: { consentId: string; accounts: { accountId: string }[] } };
    expect(api.data.consentId).toMatch(/^sc-/);
    expect(api.data.accounts.map((a) => a.accountId)).toEqual(['acc-alice-current', 'acc-alice-euro', 'acc-alice-savings']);
  });

  it('refuses a second server on the same embedded database, naming the process that holds it', async () => {
    const port = await freePort();
    const second = await run(process.execPath, ['src/main.ts'], { cwd: ROOT, env: { ...env, MOAT_LISTEN__PORT: String(port) }, timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`the embedded database is in use by process ${server.pid}`);
  });

  it('has CLI commands that touch the embedded database refuse clearly while the server holds it', async () => {
    const migrate = await run(process.execPath, ['src/cli/main.ts', 'migrate'], { cwd: ROOT, env, timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(migrate.code).toBe(1);
    expect(migrate.stderr).toContain(`the embedded database is in use by process ${server.pid}`);
  });

  it('drains and exits 0 on SIGTERM, with a TLS connection its client left unused still open', async () => {
    // Node's own connection closing does not reach it: the stop waited on it for good (src/http/listener-connections.ts).
    const unused = tlsConnect({ port: Number(new URL(issuer).port), host: '127.0.0.1', rejectUnauthorized: false });
    unused.on('error', () => undefined);
    await new Promise((r) => unused.once('secureConnect', r));
    const unusedClosed = new Promise((r) => unused.once('close', r));
    const exited = new Promise<number | null>((r) => server.once('exit', (code) => r(code)));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    await unusedClosed;
    // Drained, not cut off: at the drain's deadline (10 s) no connection was left for it to close.
    expect(output).toContain('"event":"stop"');
    expect(output).not.toContain('"event":"stop.deadline"');
  });
});

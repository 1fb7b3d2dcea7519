import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { machine } from '../bench/report.ts';
import { firstCallCommands, type FirstCallCommand } from './first-call-commands.ts';

/*
 * `npm run time-to-first-call` (issue 7): from a fresh clone, the README's "first call" commands run
 * literally — each line of the marked block through `sh -c`, in order, in the clone — timed one by
 * one, to a first certificate-bound token. A server command (`npm start`) runs in the background and
 * counts until the sandbox answers; it is stopped at the end. Reports the command count, the wall
 * time, the wall time without the package download (`npm ci`), and whether the last command got a
 * token bound to its certificate. Exits 1 when issue 7's target is missed.
 */

/** Issue 7's target: ≤ 3 minutes without the package download, ≤ 4 commands, a certificate-bound token. */
const TARGET = { maxSeconds: 180, maxCommands: 4 } as const;
/** The README's sandbox: `npm start` listens here (moat.yaml), its admin listener on 9464 (src/config/schema.ts). */
const README_PORT = 8443;
const ADMIN_PORT = 9464;
/** How long a server command may take to answer, and any other command to finish. */
const SERVER_READY_TIMEOUT_MS = 180_000;
const COMMAND_TIMEOUT_MS = 900_000;

const USAGE = `usage: npm run time-to-first-call -- [--from DIR] [--port N] [--json] [--keep]

  (default)    git clone this repository (its HEAD commit) into a temporary directory and run the
               README's first-call commands there: the figure to publish
  --from DIR   copy DIR's work tree instead (the files git tracks plus untracked, not ignored ones;
               no node_modules, data or keys): uncommitted changes included, for development
  --port N     run the sandbox on port N instead of ${README_PORT} (sets MOAT_LISTEN__PORT, MOAT_ISSUER
               and MOAT_ADMIN__PORT=0 for every command; the commands stay as the README has them)
  --json       print the report as JSON
  --keep       keep the temporary directory (the clone and each command's output)
`;

interface CommandResult {
  line: string;
  command: string;
  kind: FirstCallCommand['kind'];
  seconds: number;
  exitCode: number | null;
  log: string;
}

interface FirstCallLine {
  firstCall?: string;
  certificateBound?: boolean;
  'x5t#S256'?: string;
  introspectedX5tS256?: string;
  apiStatus?: number;
}

interface TimeToFirstCallReport {
  source: { kind: 'clone'; repository: string; commit: string } | { kind: 'work-tree'; directory: string; commit: string };
  readme: string;
  date: string;
  machine: ReturnType<typeof machine>;
  issuer: string;
  npmCache: string;
  prepareSeconds: number;
  commands: Omit<CommandResult, 'log'>[];
  commandCount: number;
  wallSeconds: number;
  downloadSeconds: number;
  wallSecondsWithoutDownload: number;
  certificateBound: boolean;
  thumbprint: string | undefined;
  apiStatus: number | undefined;
  target: typeof TARGET;
  met: boolean;
  misses: string[];
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;
const progress = (line: string) => process.stderr.write(`${line}\n`);

async function main(argv: string[]): Promise<number> {
  let options;
  try {
    ({ values: options } = parseArgs({
      args: argv,
      options: {
        from: { type: 'string' },
        port: { type: 'string' },
        json: { type: 'boolean', default: false },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const port = options.port === undefined ? README_PORT : Number(options.port);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    process.stderr.write(`--port takes a port number, not ${options.port}\n${USAGE}`);
    return 2;
  }
  const busy = await portsInUse(port === README_PORT ? [port, ADMIN_PORT] : [port]);
  if (busy.length > 0) {
    process.stderr.write(
      `time-to-first-call: port ${busy.join(' and ')} ${busy.length > 1 ? 'are' : 'is'} in use (another \`npm start\`?). ` +
        `The README's commands run the sandbox on ${README_PORT}${port === README_PORT ? ` and its admin listener on ${ADMIN_PORT}` : ''}: ` +
        'stop what listens there, or measure on another port with --port N.\n',
    );
    return 2;
  }

  const work = mkdtempSync(join(tmpdir(), 'moat-first-call-'));
  const checkout = join(work, 'moat');
  let server: ChildProcess | undefined;
  try {
    const prepareStarted = performance.now();
    const source = options.from === undefined ? cloneHead(checkout) : copyWorkTree(resolve(options.from), checkout);
    const prepareSeconds = seconds(performance.now() - prepareStarted);
    progress(
      source.kind === 'clone'
        ? `Cloned ${source.repository} at ${source.commit.slice(0, 12)} into ${checkout} (${prepareSeconds} s)`
        : `Copied the work tree of ${source.directory} (HEAD ${source.commit.slice(0, 12)} + uncommitted changes) into ${checkout} (${prepareSeconds} s)`,
    );

    const commands = firstCallCommands(readFileSync(join(checkout, 'README.md'), 'utf8'));
    const issuer = `https://localhost:${port}`;
    const env = commandEnv(port);
    progress(`README.md's first-call block: ${commands.length} commands, each run with sh -c in the ${source.kind === 'clone' ? 'clone' : 'copy'}`);

    const results: CommandResult[] = [];
    const started = performance.now();
    for (const [i, command] of commands.entries()) {
      const log = join(work, `command-${i + 1}.log`);
      progress(`[${i + 1}/${commands.length}] $ ${command.line}`);
      const commandStarted = performance.now();
      let exitCode: number | null;
      if (command.kind === 'server') {
        server = spawnCommand(command.line, checkout, env, log);
        exitCode = await untilAnswering(server, issuer, join(checkout, 'data', 'sandbox', 'server-ca.pem'));
      } else {
        exitCode = await runToEnd(spawnCommand(command.line, checkout, env, log));
      }
      const result = { line: command.line, command: command.command, kind: command.kind, seconds: seconds(performance.now() - commandStarted), exitCode, log };
      results.push(result);
      progress(
        `      ${result.seconds} s${command.kind === 'server' ? ` (until ${issuer} answered)` : ''}${exitCode === 0 ? '' : ` — FAILED (${exitCode === null ? 'timed out' : `exit ${exitCode}`})`}`,
      );
      if (exitCode !== 0) {
        progress(tail(log));
        break;
      }
    }
    const wallSeconds = seconds(performance.now() - started);

    const last = results.length === commands.length ? results.at(-1) : undefined;
    const firstCall = last?.exitCode === 0 ? lastJsonLine(readFileSync(last.log, 'utf8')) : undefined;
    const certificateBound =
      firstCall?.certificateBound === true && firstCall['x5t#S256'] !== undefined && firstCall['x5t#S256'] === firstCall.introspectedX5tS256;
    const downloadSeconds = seconds(results.filter((r) => r.kind === 'download').reduce((sum, r) => sum + r.seconds * 1000, 0));
    const wallSecondsWithoutDownload = seconds((wallSeconds - downloadSeconds) * 1000);
    const misses = [
      ...(results.every((r) => r.exitCode === 0) && results.length === commands.length ? [] : ['a command failed']),
      ...(commands.length <= TARGET.maxCommands ? [] : [`${commands.length} commands (target ≤ ${TARGET.maxCommands})`]),
      ...(wallSecondsWithoutDownload <= TARGET.maxSeconds
        ? []
        : [`${wallSecondsWithoutDownload} s without the package download (target ≤ ${TARGET.maxSeconds} s)`]),
      ...(certificateBound ? [] : ['no certificate-bound token: the last command printed no {"certificateBound":true,…} line with matching thumbprints']),
    ];
    const report: TimeToFirstCallReport = {
      source,
      readme: 'README.md, between <!-- time-to-first-call:begin --> and <!-- time-to-first-call:end -->',
      date: new Date().toISOString(),
      machine: machine(),
      issuer,
      npmCache: 'local (npm_config_prefer_offline=true)',
      prepareSeconds,
      commands: results.map(({ log: _log, ...rest }) => rest),
      commandCount: commands.length,
      wallSeconds,
      downloadSeconds,
      wallSecondsWithoutDownload,
      certificateBound,
      thumbprint: firstCall?.['x5t#S256'],
      apiStatus: firstCall?.apiStatus,
      target: TARGET,
      met: misses.length === 0,
      misses,
    };
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : format(report));
    return report.met ? 0 : 1;
  } finally {
    if (server !== undefined) await stop(server);
    if (options.keep) progress(`Kept ${work} (the ${options.from === undefined ? 'clone' : 'copy'} and command-N.log for each command)`);
    else rmSync(work, { recursive: true, force: true });
  }
}

/** `git clone` of the repository this script belongs to: its HEAD commit, nothing uncommitted. */
function cloneHead(target: string): TimeToFirstCallReport['source'] {
  const repository = git(resolve(import.meta.dirname, '..'), ['rev-parse', '--show-toplevel']);
  execFileSync('git', ['clone', '--quiet', '--no-hardlinks', repository, target], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { kind: 'clone', repository, commit: git(target, ['rev-parse', 'HEAD']) };
}

/**
 * The work tree as a commit of it would be: the files git tracks and the untracked ones it does not
 * ignore, as they are on disk — so no node_modules, data/, keys or ./acme. Reads git's index, never
 * writes it.
 */
function copyWorkTree(directory: string, target: string): TimeToFirstCallReport['source'] {
  const files = git(directory, ['ls-files', '-z', '--cached', '--others', '--exclude-standard']).split('\0').filter(Boolean);
  for (const file of files) {
    // A tracked file deleted in the work tree is not copied, as a commit of the work tree would lack it.
    if (!existsSync(join(directory, file))) continue;
    mkdirSync(dirname(join(target, file)), { recursive: true });
    copyFileSync(join(directory, file), join(target, file));
  }
  return { kind: 'work-tree', directory, commit: git(directory, ['rev-parse', 'HEAD']) };
}

function git(cwd: string, args: string[]): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8' }).replace(/\n$/, '');
}

/**
 * The environment of a developer's fresh shell, not of this npm script: no npm_* variables and no
 * node_modules/.bin of this checkout on the PATH, no MOAT_* overrides (but --port's). The npm cache
 * is used as it is (prefer-offline), so `npm ci` measures the local install, not the network.
 */
function commandEnv(port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(name) || name.startsWith('MOAT_') || name === 'INIT_CWD' || name === 'NODE_OPTIONS') continue;
    env[name] = value;
  }
  env.PATH = (process.env.PATH ?? '')
    .split(':')
    .filter((p) => !/node_modules[\\/]\.bin$|node-gyp-bin$/.test(p))
    .join(':');
  env.npm_config_prefer_offline = 'true';
  env.npm_config_audit = 'false';
  env.npm_config_fund = 'false';
  env.npm_config_update_notifier = 'false';
  if (port !== README_PORT) {
    env.MOAT_LISTEN__PORT = String(port);
    env.MOAT_ISSUER = `https://localhost:${port}`;
    env.MOAT_ADMIN__PORT = '0';
  }
  return env;
}

/** `sh -c LINE` in its own process group (so the whole of `npm start` can be stopped), output to LOG. */
function spawnCommand(line: string, cwd: string, env: NodeJS.ProcessEnv, log: string): ChildProcess {
  const fd = openSync(log, 'w');
  try {
    return spawn('sh', ['-c', line], { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
}

/** The exit code, or null when the command outlived COMMAND_TIMEOUT_MS (it is then stopped). */
function runToEnd(child: ChildProcess): Promise<number | null> {
  return new Promise((done) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void stop(child);
    }, COMMAND_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      // Killed by a signal (code null) other than ours: report it as a failure, like sh's 128+n.
      done(timedOut ? null : (code ?? 128));
    });
  });
}

/**
 * Waits until the server command's sandbox answers discovery over TLS trusting the CA it wrote —
 * this server, not another one on the port. 0 when it answers; its exit code if it exits first;
 * null on timeout.
 */
async function untilAnswering(server: ChildProcess, issuer: string, caFile: string): Promise<number | null> {
  const deadline = Date.now() + SERVER_READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) return server.exitCode === 0 ? 1 : server.exitCode;
    if (existsSync(caFile) && (await answers(`${issuer}/.well-known/openid-configuration`, readFileSync(caFile)))) return 0;
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}

function answers(url: string, ca: Buffer): Promise<boolean> {
  return new Promise((done) => {
    const req = get(url, { ca, timeout: 2_000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.once('error', () => done(false));
    req.once('timeout', () => req.destroy());
  });
}

/** SIGTERM to the command's process group, SIGKILL after 10 s; waits until the group is gone. */
async function stop(child: ChildProcess): Promise<void> {
  const group = -child.pid!;
  const alive = () => {
    try {
      process.kill(group, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(group, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(group, 'SIGKILL');
  while (alive()) await new Promise((r) => setTimeout(r, 50));
}

/** The ports of these that something listens on (or cannot be bound for another reason). */
async function portsInUse(ports: number[]): Promise<number[]> {
  const busy: number[] = [];
  for (const port of ports) {
    const free = await new Promise<boolean>((done) => {
      const probe = createServer();
      probe.once('error', () => done(false));
      probe.listen(port, () => probe.close(() => done(true)));
    });
    if (!free) busy.push(port);
  }
  return busy;
}

/** The last line of the output that parses as a JSON object (npm's own lines come before it). */
function lastJsonLine(output: string): FirstCallLine | undefined {
  for (const line of output.trim().split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    try {
      return JSON.parse(line) as FirstCallLine;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function tail(log: string): string {
  const lines = readFileSync(log, 'utf8').trimEnd().split('\n');
  return lines
    .slice(-20)
    .map((l) => `      | ${l}`)
    .join('\n');
}

function format(r: TimeToFirstCallReport): string {
  // The table shows each command without its README comment; the JSON has the line as run too.
  const width = Math.max(...r.commands.map((c) => c.command.length));
  const note = { download: '  package download: not in the target', server: `  until ${r.issuer} answered`, command: '' } as const;
  return [
    "Time to first call (issue 7): the README's first-call commands, run literally",
    `  from ${r.source.kind === 'clone' ? `a clone of ${r.source.repository} at ${r.source.commit}` : `a copy of the work tree of ${r.source.directory} (HEAD ${r.source.commit} + uncommitted changes)`}`,
    '',
    ...r.commands.map((c, i) => `  ${i + 1}. ${c.command.padEnd(width)}  ${String(c.seconds).padStart(6)} s${c.exitCode === 0 ? note[c.kind] : '  FAILED'}`),
    '',
    `Commands:                      ${r.commandCount} (target ≤ ${r.target.maxCommands})`,
    `Wall time:                     ${r.wallSeconds} s`,
    `Without the package download:  ${r.wallSecondsWithoutDownload} s (target ≤ ${r.target.maxSeconds} s; npm ci from the local npm cache took ${r.downloadSeconds} s)`,
    `Certificate-bound token:       ${r.certificateBound ? `yes — introspection cnf.x5t#S256 = the certificate's thumbprint ${r.thumbprint}` : 'no'}`,
    `Sandbox API call:              ${r.apiStatus === undefined ? 'none' : `HTTP ${r.apiStatus}`}`,
    `Machine:                       ${r.machine.cpus} cores (${r.machine.cpuModel}), ${r.machine.memoryGiB} GiB, Node ${r.machine.node}; ${r.date}`,
    `(${r.source.kind === 'clone' ? 'clone' : 'copy'}: ${r.prepareSeconds} s, not counted)`,
    '',
    r.met ? 'Target met.' : `Target missed: ${r.misses.join('; ')}.`,
    '',
  ].join('\n');
}

process.exitCode = await main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`time-to-first-call: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
});

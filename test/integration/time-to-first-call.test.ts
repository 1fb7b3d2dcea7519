import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { resolve } from 'node:path';
import { firstCallCommands, type FirstCallCommand } from '../../scripts/first-call-commands.ts';
import { freePort } from '../support/ports.ts';

/*
 * Issue 7, the part CI can check cheaply: the README's first-call block — what
 * scripts/time-to-first-call.ts runs literally in a fresh clone — stays within four commands, makes
 * no certificate by hand, and ends with the example TPP client that test/examples/tpp-client.test.ts
 * runs against a real server. The full clone + npm ci run (about 40 s on 2 cores, most of it npm ci)
 * runs here only with MOAT_TEST_TIME_TO_FIRST_CALL=1; `npm run time-to-first-call` is the measurement.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const SCRIPT = 'scripts/time-to-first-call.ts';
const readme = readFileSync(resolve(ROOT, 'README.md'), 'utf8');
const scripts = (JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** What `npm run NAME` / `npm start` runs, from package.json. */
function npmScript(command: string): string | undefined {
  const name = /^npm (?:run (\S+)|(start))/.exec(command);
  return name === null ? undefined : scripts[name[1] ?? name[2]!];
}

/** The value after `flag` in a command line. */
function flagValue(command: string, flag: string): string | undefined {
  return new RegExp(`${flag}[ =](\\S+)`).exec(command)?.[1];
}

function node(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, args, { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

describe("the README's first-call block (issue 7: ≤ 4 commands, no hand-made certificate)", () => {
  const commands = firstCallCommands(readme);

  it('has at most four commands, each an npm command a TPP developer pastes as it is', () => {
    expect(commands.length).toBeGreaterThan(0);
    expect(commands.length).toBeLessThanOrEqual(4);
    for (const { command } of commands) expect(command).toMatch(/^npm (ci|start|run [\w:-]+)( |$)/);
  });

  it('makes no certificate by hand: no openssl, keytool, mkcert or cfssl', () => {
    for (const { line } of commands) expect(line).not.toMatch(/\b(openssl|keytool|mkcert|cfssl|certtool)\b/);
  });

  it('downloads the packages, starts the sandbox, then issues the TPP credentials with the CLI', () => {
    expect(commands.map((c) => c.kind)).toEqual(['download', 'server', 'command', 'command']);
    expect(npmScript(commands[1]!.command)).toBe(
      'MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 sh scripts/with-node.sh --max-semi-space-size=16 --heap-growing-percent=30 --liftoff-only src/main.ts',
    );
    expect(commands[2]!.command).toMatch(/^npm run moat -- sandbox tpp /);
    expect(npmScript(commands[2]!.command)).toBe(
      'MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 sh scripts/with-node.sh --max-semi-space-size=16 --heap-growing-percent=30 --liftoff-only src/cli/main.ts',
    );
  });

  it('ends with the example TPP client that test/examples/tpp-client.test.ts runs, on the credentials just issued', () => {
    const last = commands.at(-1)!.command;
    // The same entry point as test/examples/tpp-client.test.ts's EXAMPLE, through with-node.sh.
    expect(npmScript(last)).toBe('sh scripts/with-node.sh examples/tpp-client/main.ts');
    const testedExample = /const EXAMPLE = '([^']+)'/.exec(readFileSync(resolve(ROOT, 'test/examples/tpp-client.test.ts'), 'utf8'))?.[1];
    expect(npmScript(last)).toBe(`sh scripts/with-node.sh ${testedExample}`);
    expect(flagValue(last, '--credentials') ?? './acme').toBe(flagValue(commands[2]!.command, '--out'));
    // No --issuer: the example's default is npm start's https://localhost:8443.
    expect(last).not.toContain('--issuer');
  });
});

describe('reading the marked block', () => {
  const block = (body: string) =>
    `# Title\n\n<!-- time-to-first-call:begin -->\n\`\`\`sh\n${body}\n\`\`\`\n<!-- time-to-first-call:end -->\n\`\`\`sh\nnpm run outside\n\`\`\`\n`;

  it('keeps each line as written, and its command without the trailing comment', () => {
    expect(firstCallCommands(block('npm ci\nnpm start   # terminal 1\nnpm run moat -- x --name "A # B" --out ./acme  # two'))).toEqual<FirstCallCommand[]>([
      { line: 'npm ci', command: 'npm ci', kind: 'download' },
      { line: 'npm start   # terminal 1', command: 'npm start', kind: 'server' },
      { line: 'npm run moat -- x --name "A # B" --out ./acme  # two', command: 'npm run moat -- x --name "A # B" --out ./acme', kind: 'command' },
    ]);
  });

  it('skips blank and comment lines and joins backslash continuations into one command', () => {
    expect(firstCallCommands(block('# set-up\n\nnpm run a -- \\\n  --b c\n')).map((c) => c.command)).toEqual(['npm run a -- --b c']);
  });

  it('refuses a README without the markers or without a code block between them', () => {
    expect(() => firstCallCommands('```sh\nnpm ci\n```\n')).toThrow(
      'README.md has no <!-- time-to-first-call:begin --> … <!-- time-to-first-call:end --> block',
    );
    expect(() => firstCallCommands('<!-- time-to-first-call:begin -->\nnpm ci\n<!-- time-to-first-call:end -->')).toThrow('holds no ```sh code block');
  });
});

describe('npm run time-to-first-call', () => {
  let busy: Server;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    busy = createServer();
    await new Promise<void>((done) => busy.listen(port, done));
  });

  afterAll(async () => {
    await new Promise<void>((done) => busy.close(() => done()));
  });

  it('says the port is in use and exits 2 before cloning anything', async () => {
    const run = await node([SCRIPT, '--port', String(port)]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`time-to-first-call: port ${port} is in use (another \`npm start\`?)`);
    expect(run.stderr).not.toContain('Cloned');
  });

  it('rejects an unknown option with its usage and exit code 2', async () => {
    const run = await node([SCRIPT, '--fast']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('usage: npm run time-to-first-call');
  });

  const full = process.env.MOAT_TEST_TIME_TO_FIRST_CALL === '1' ? it : it.skip;
  full(
    'runs the block from a copy of this work tree to a certificate-bound token within the target',
    async () => {
      const run = await new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
        void freePort().then((free) =>
          execFile(process.execPath, [SCRIPT, '--from', ROOT, '--port', String(free), '--json'], { cwd: ROOT, timeout: 300_000 }, (err, stdout, stderr) => {
            done({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
          }),
        );
      });
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
      const report = JSON.parse(run.stdout) as {
        commandCount: number;
        certificateBound: boolean;
        apiStatus: number;
        met: boolean;
        wallSecondsWithoutDownload: number;
      };
      expect(report).toEqual(expect.objectContaining({ commandCount: 4, certificateBound: true, apiStatus: 200, met: true }));
      expect(report.wallSecondsWithoutDownload).toBeLessThanOrEqual(180);
    },
    320_000,
  );
});

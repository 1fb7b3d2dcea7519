import { runCli } from './cli/main.ts';

// `npm start` is `moat start`: the sandbox on the embedded default unless moat.yaml / MOAT_* say otherwise.
process.exitCode = await runCli(['start', ...process.argv.slice(2)], {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
});

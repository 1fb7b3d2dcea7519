#!/usr/bin/env node
// The `moat` command. Node 22.19+ runs the TypeScript sources directly (type stripping).
import { runCli } from '../src/cli/main.ts';

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd(),
});

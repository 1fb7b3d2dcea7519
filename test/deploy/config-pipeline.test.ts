import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { COMMANDS } from '../../src/cli/main.ts';

/*
 * The example configuration pipeline (deploy/ci/moat-config.yml) against the CLI it drives: every
 * `moat` command it runs exists with the options it passes, it validates with the production rules
 * and plans with --detailed-exitcode before the deploy job, and checks the deployment afterwards.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const workflow = parse(readFileSync(join(ROOT, 'deploy', 'ci', 'moat-config.yml'), 'utf8')) as {
  jobs: Record<string, { needs?: string; if?: string; steps: { name?: string; run?: string }[] }>;
};
const IMAGE_COMMAND = /"\$MOAT_IMAGE"\s+((?:[^\n\\]|\\\n)+)/g;

/** Each Moat command line the pipeline runs in the image, joined across its line continuations. */
function moatCommands(job: string): string[][] {
  return workflow.jobs[job]!.steps.flatMap((step) => [...(step.run ?? '').matchAll(IMAGE_COMMAND)].map((m) => m[1]!.replace(/\\\n/g, ' ').trim().split(/\s+/)));
}

it('validates with the production rules and plans against the running deployment before deploying', () => {
  const plan = moatCommands('plan');
  expect(plan.map((c) => c.slice(0, 2))).toEqual([
    ['config', 'validate'],
    ['config', 'plan'],
  ]);
  expect(plan[0]).toContain('--production');
  expect(plan[1]).toEqual(expect.arrayContaining(['--against', '--detailed-exitcode']));
  expect(workflow.jobs.deploy!.needs).toBe('plan');
  expect(workflow.jobs.deploy!.if).toContain("needs.plan.outputs.changes == 'yes'");
  expect(moatCommands('deploy').map((c) => c.slice(0, 2))).toEqual([['config', 'plan']]);
});

it('passes only options the moat CLI knows', () => {
  for (const command of [...moatCommands('plan'), ...moatCommands('deploy')]) {
    const known = Object.keys(COMMANDS[command[0]!]!.options);
    const options = command.filter((word) => word.startsWith('--')).map((word) => word.slice(2));
    expect(options.filter((o) => !known.includes(o))).toEqual([]);
  }
});

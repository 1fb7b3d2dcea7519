import type { ConfigChange, ConfigDescription } from '../config/config-description.ts';
import { planConfig } from '../config/config-description.ts';
import { ADMIN_CLIENT_OPTIONS, ADMIN_CLIENT_USAGE, withAdminClient, withoutAdminClientEnv } from './admin-client.ts';
import { EXIT_OK, EXIT_USAGE, type CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage: moat config plan --against ADMIN_URL [--config FILE] [--json] [--detailed-exitcode]
  shows, key by key, what running the configuration (moat.yaml, or --config / MOAT_CONFIG, plus
  MOAT_* overrides) would change on the running instance whose admin listener is ADMIN_URL; secrets
  are shown as changed or unchanged, never their values
  --detailed-exitcode   exit 2 when there are changes (0: none, 1: error), for a pipeline to branch on
${ADMIN_CLIENT_USAGE}`;

/** Every option of `moat config plan`, in parseArgs form. */
export const OPTIONS = {
  against: { type: 'string' as const },
  json: { type: 'boolean' as const },
  'detailed-exitcode': { type: 'boolean' as const },
  ...ADMIN_CLIENT_OPTIONS,
};

const EXIT_CHANGES = 2;

const shown = (value: unknown) => JSON.stringify(value);

function line(change: ConfigChange): string {
  if (change.secret) return `  ${{ added: '+', removed: '-', changed: '~' }[change.change]} ${change.key}: (secret) ${change.change}`;
  if (change.change === 'added') return `  + ${change.key}: ${shown(change.file)}`;
  if (change.change === 'removed') return `  - ${change.key}: ${shown(change.running)}`;
  return `  ~ ${change.key}: ${shown(change.running)} → ${shown(change.file)}`;
}

/** `moat config plan`: the difference between a configuration file and a running instance. */
export async function configPlanCommand(args: string[], io: CliIo): Promise<number> {
  const result = loadConfigOrReport(args, { ...io, env: withoutAdminClientEnv(io.env) }, OPTIONS);
  if ('exitCode' in result) return result.exitCode;
  const { values, loaded } = result;
  if (typeof values.against !== 'string' || values.against === '') {
    io.stderr.write(`moat: --against ADMIN_URL is required (the running instance's admin listener)\n${USAGE}`);
    return EXIT_USAGE;
  }
  return withAdminClient(loaded.config, { ...values, 'admin-url': values.against }, io, async (admin) => {
    const running = await admin.request<ConfigDescription & { instanceId: string }>('GET', '/config');
    const changes = planConfig(loaded.config, running);
    if (values.json === true) {
      io.stdout.write(`${JSON.stringify({ running: { url: admin.url, instanceId: running.instanceId, configHash: running.hash }, changes }, null, 2)}\n`);
    } else if (changes.length === 0) {
      io.stdout.write(`no changes: ${loaded.source} is what ${admin.url} runs (configuration ${running.hash.slice(0, 12)})\n`);
    } else {
      io.stdout.write(
        [
          `${changes.length} key${changes.length === 1 ? '' : 's'} would change on ${admin.url} (running configuration ${running.hash.slice(0, 12)}) with ${loaded.source}:`,
          ...changes.map(line),
          '',
        ].join('\n'),
      );
    }
    return changes.length > 0 && values['detailed-exitcode'] === true ? EXIT_CHANGES : EXIT_OK;
  });
}

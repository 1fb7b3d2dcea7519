import type { StoredFlag, Restriction } from '../threats/client-restrictions.ts';
import { ADMIN_CLIENT_OPTIONS, ADMIN_CLIENT_USAGE, withAdminClient, withoutAdminClientEnv } from './admin-client.ts';
import { EXIT_OK, EXIT_USAGE, type CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage (through the running server's admin listener):
  moat threats flags [--client ID] [--since ISO] [--limit N]       what the detector flagged, with why
  moat threats restrictions [--client ID] [--all]                  quarantines and step-ups in force (--all: history)
  moat threats quarantine --client ID --reason TEXT                 lock a client out and revoke its tokens
  moat threats step-up --client ID --reason TEXT [--seconds N]      no refresh, short tokens for a while
  moat threats release --client ID --reason TEXT [--kind quarantine|step-up]
options: --json, --config FILE
  --data-dir DIR           the server's data directory (default: dataDir, ./data): where the sandbox keeps its admin token
${ADMIN_CLIENT_USAGE}`;

/** Every option of `moat threats`, in parseArgs form. */
export const OPTIONS = {
  client: { type: 'string' as const },
  since: { type: 'string' as const },
  limit: { type: 'string' as const },
  all: { type: 'boolean' as const },
  reason: { type: 'string' as const },
  seconds: { type: 'string' as const },
  kind: { type: 'string' as const },
  json: { type: 'boolean' as const },
  ...ADMIN_CLIENT_OPTIONS,
};

function describeRestriction(r: Restriction): string {
  const state =
    r.releasedAt !== undefined
      ? `released ${new Date(r.releasedAt).toISOString()} by ${r.releasedBy}`
      : r.until !== undefined
        ? `until ${new Date(r.until).toISOString()}`
        : 'until released';
  return `${r.kind.padEnd(10)} ${r.clientId}  since ${new Date(r.since).toISOString()} by ${r.createdBy}, ${state}\n           ${r.reason}`;
}

/** `moat threats …`: the detector's flags and the restrictions on clients, via the admin API. */
export async function threatsCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (!['flags', 'restrictions', 'quarantine', 'step-up', 'release'].includes(sub ?? '')) {
    io.stderr.write(USAGE);
    return EXIT_USAGE;
  }
  const result = loadConfigOrReport(rest, { ...io, env: withoutAdminClientEnv(io.env) }, OPTIONS);
  if ('exitCode' in result) return result.exitCode;
  const v = result.values as Record<string, string | boolean | undefined>;
  const str = (name: string) => (typeof v[name] === 'string' ? v[name] : undefined);
  const needs = (...names: string[]) => {
    const missing = names.filter((n) => str(n) === undefined || str(n) === '');
    if (missing.length > 0) io.stderr.write(`moat: threats ${sub} needs ${missing.map((m) => `--${m}`).join(' and ')}\n`);
    return missing.length === 0;
  };
  const print = (value: unknown, text: () => string) => io.stdout.write(v.json === true ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
  const client = encodeURIComponent(str('client') ?? '');
  return withAdminClient(result.loaded.config, v, io, async (admin) => {
    switch (sub) {
      case 'flags': {
        const q = new URLSearchParams({
          ...(str('client') ? { client: str('client')! } : {}),
          ...(str('since') ? { since: str('since')! } : {}),
          ...(str('limit') ? { limit: str('limit')! } : {}),
        });
        const flags = await admin.request<StoredFlag[]>('GET', `/threats/flags?${q}`);
        print(flags, () =>
          flags.length === 0
            ? 'no flags'
            : flags
                .map(
                  (f) =>
                    `#${f.id} ${new Date(f.at).toISOString()} ${f.severity.toUpperCase().padEnd(6)} ${f.entity} ${f.signal} → ${f.response}\n    ${f.explanation}`,
                )
                .join('\n'),
        );
        return EXIT_OK;
      }
      case 'restrictions': {
        const q = new URLSearchParams({ ...(str('client') ? { client: str('client')! } : {}), ...(v.all === true ? { all: '1' } : {}) });
        const list = await admin.request<Restriction[]>('GET', `/clients/restrictions?${q}`);
        print(list, () => (list.length === 0 ? 'no restrictions in force' : list.map(describeRestriction).join('\n')));
        return EXIT_OK;
      }
      case 'quarantine': {
        if (!needs('client', 'reason')) return EXIT_USAGE;
        const r = await admin.request<Restriction>('POST', `/clients/${client}/quarantine`, { reason: str('reason') });
        print(r, () => `quarantined: ${describeRestriction(r)}`);
        return EXIT_OK;
      }
      case 'step-up': {
        if (!needs('client', 'reason')) return EXIT_USAGE;
        const seconds = str('seconds') === undefined ? undefined : Number(str('seconds'));
        const r = await admin.request<Restriction>('POST', `/clients/${client}/step-up`, {
          reason: str('reason'),
          ...(seconds === undefined ? {} : { seconds }),
        });
        print(r, () => `stepped up: ${describeRestriction(r)}`);
        return EXIT_OK;
      }
      default: {
        if (!needs('client', 'reason')) return EXIT_USAGE;
        const r = await admin.request<Restriction>('POST', `/clients/${client}/release`, { reason: str('reason'), kind: str('kind') ?? 'quarantine' });
        print(r, () => `released: ${describeRestriction(r)}`);
        return EXIT_OK;
      }
    }
  });
}

import type { AuditLog, AuditQuery, AuditRecord, ChainVerdict } from '../audit/audit-log.ts';
import type { MoatConfig } from '../config/schema.ts';
import { ADMIN_CLIENT_OPTIONS, ADMIN_CLIENT_USAGE, withAdminClient, withoutAdminClientEnv, type AdminClient } from './admin-client.ts';
import { withDirectDatabase } from './direct-database.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage (through the running server's admin listener):
  moat audit verify                      walk the hash chain; exit 1 at the first broken record
  moat audit query [--client ID] [--org ID] [--customer ID] [--type TYPE] [--since ISO] [--until ISO] [--limit N]
options: --config FILE
  --data-dir DIR           the server's data directory (default: dataDir, ./data): its admin token, its embedded database
  --direct                 read the database itself, for when the server is NOT running
                           (the embedded database is locked while it runs)
${ADMIN_CLIENT_USAGE}`;

/** What `moat audit query` takes to filter by. */
const QUERY_OPTIONS = {
  client: { type: 'string' as const },
  org: { type: 'string' as const },
  customer: { type: 'string' as const },
  type: { type: 'string' as const },
  since: { type: 'string' as const },
  until: { type: 'string' as const },
  limit: { type: 'string' as const },
};
/** Every option of `moat audit`, in parseArgs form. */
export const OPTIONS = { direct: { type: 'boolean' as const }, ...ADMIN_CLIENT_OPTIONS, ...QUERY_OPTIONS };

/** What the audit commands need of the log, whether reached through the admin API or directly. */
type AuditReader = Pick<AuditLog, 'query' | 'verify'>;

/** `moat audit …`: verify the audit log's hash chain, and query it by TPP, customer and time. */
export async function auditCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'verify' && sub !== 'query') {
    io.stderr.write(USAGE);
    return EXIT_USAGE;
  }
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    direct: { type: 'boolean' as const },
    ...ADMIN_CLIENT_OPTIONS,
    ...(sub === 'query' ? QUERY_OPTIONS : {}),
  };
  const result = loadConfigOrReport(rest, { ...io, env: withoutAdminClientEnv(io.env) }, options);
  if ('exitCode' in result) return result.exitCode;
  const v = result.values as Record<string, string | undefined>;
  const dates: Record<string, Date> = {};
  for (const name of ['since', 'until'] as const) {
    if (v[name] === undefined) continue;
    const d = new Date(v[name]);
    if (Number.isNaN(d.getTime())) {
      io.stderr.write(`moat: --${name} takes an ISO 8601 date or date-time\n`);
      return EXIT_USAGE;
    }
    dates[name] = d;
  }
  return withAuditReader(result.loaded.config, result.values, io, async (audit) => {
    if (sub === 'verify') {
      const verdict = await audit.verify();
      if (verdict.intact) {
        io.stdout.write(`audit chain intact: ${verdict.records} records, head ${verdict.head}\n`);
        return EXIT_OK;
      }
      io.stdout.write(`audit chain BROKEN at record ${verdict.brokenAt} (${verdict.records} records verified before it): ${verdict.reason}\n`);
      return EXIT_FAILURE;
    }
    const records = await audit.query({
      ...(v.client === undefined ? {} : { clientId: v.client }),
      ...(v.org === undefined ? {} : { orgId: v.org }),
      ...(v.customer === undefined ? {} : { customerId: v.customer }),
      ...(v.type === undefined ? {} : { type: v.type }),
      ...dates,
      ...(v.limit === undefined ? {} : { limit: Number(v.limit) }),
    });
    for (const r of records) io.stdout.write(`${JSON.stringify(r)}\n`);
    return EXIT_OK;
  });
}

/** The audit log through the admin API, or with `--direct` from the database itself. */
async function withAuditReader(config: MoatConfig, values: Record<string, unknown>, io: CliIo, fn: (audit: AuditReader) => Promise<number>): Promise<number> {
  if (values.direct !== true) {
    return withAdminClient(config, values, io, (admin) => fn(adminAuditReader(admin)), ' (with the server stopped, add --direct to read the database itself)');
  }
  return withDirectDatabase(config, io, ({ audit }) => fn(audit));
}

function adminAuditReader(admin: AdminClient): AuditReader {
  return {
    verify: () => admin.request<ChainVerdict>('GET', '/audit/verify'),
    query: async (filter: AuditQuery) => {
      const q = new URLSearchParams();
      for (const [name, value] of [
        ['client', filter.clientId],
        ['org', filter.orgId],
        ['customer', filter.customerId],
        ['type', filter.type],
        ['since', filter.since?.toISOString()],
        ['until', filter.until?.toISOString()],
        ['limit', filter.limit?.toString()],
      ] as const) {
        if (value !== undefined) q.set(name, value);
      }
      return (await admin.request<AuditRecord[]>('GET', `/audit?${q}`)).map((r) => ({ ...r, at: new Date(r.at) }));
    },
  };
}

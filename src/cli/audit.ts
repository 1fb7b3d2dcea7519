import { pino } from 'pino';
import { createAuditLog } from '../audit/audit-log.ts';
import { createStorage } from '../storage/create-storage.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

const USAGE = `usage:
  moat audit verify                      walk the hash chain; exit 1 at the first broken record
  moat audit query [--client ID] [--org ID] [--customer ID] [--type TYPE] [--since ISO] [--until ISO] [--limit N]
`;

/** `moat audit …`: verify the audit log's hash chain, and query it by TPP, customer and time. */
export async function auditCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'verify' && sub !== 'query') {
    io.stderr.write(USAGE);
    return EXIT_USAGE;
  }
  const options: Record<string, { type: 'string' }> = sub === 'query' ? {
    client: { type: 'string' as const }, org: { type: 'string' as const }, customer: { type: 'string' as const }, type: { type: 'string' as const },
    since: { type: 'string' as const }, until: { type: 'string' as const }, limit: { type: 'string' as const },
  } : {};
  const result = loadConfigOrReport(rest, io, options);
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
  let storage;
  try {
    storage = await createStorage(result.loaded.config);
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n`);
    return EXIT_FAILURE;
  }
  try {
    const audit = createAuditLog(storage.sql, pino({ level: 'silent' }));
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
      ...(v.client === undefined ? {} : { clientId: v.client }), ...(v.org === undefined ? {} : { orgId: v.org }),
      ...(v.customer === undefined ? {} : { customerId: v.customer }), ...(v.type === undefined ? {} : { type: v.type }),
      ...dates, ...(v.limit === undefined ? {} : { limit: Number(v.limit) }),
    });
    for (const r of records) io.stdout.write(`${JSON.stringify(r)}\n`);
    return EXIT_OK;
  } finally {
    await storage.close();
  }
}

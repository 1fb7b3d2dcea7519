import type { MoatConfig } from '../config/schema.ts';
import type { CertificateEvent, RegisteredCertificate, TppOrganisation } from '../certificates/certificate-registry.ts';
import { CERTIFICATE_STATUSES, type CertificateStatus } from '../certificates/certificate-registry.ts';
import { createSqlCertificateRegistry } from '../storage/sql/certificate-registry.ts';
import { ADMIN_CLIENT_OPTIONS, ADMIN_CLIENT_USAGE, AdminApiError, withAdminClient, withoutAdminClientEnv, type AdminClient } from './admin-client.ts';
import { withDirectDatabase } from './direct-database.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage (through the running server's admin listener, audited as your operator identity):
  moat certs list [--org ORG_ID] [--status active|retired|revoked] [--json]
  moat certs show THUMBPRINT [--json]
  moat certs revoke THUMBPRINT --reason TEXT
  moat certs expiring [--within 30d] [--json]     (d, h or m; days when no unit)
  moat certs unrenewed [--within 30d] [--json]    TPPs whose certificate expires with no later one registered,
                                                  and the expiry notices sent to them (default: the widest horizon)
  moat tpps list [--json]
options: --config FILE
  --data-dir DIR           the server's data directory (default: dataDir, ./data): its admin token, its embedded database
  --direct                 read and write the database itself, for when the server is NOT running
                           (the embedded database is locked while it runs; no operator identity is audited)
${ADMIN_CLIENT_USAGE}`;

const SOURCE_OPTIONS = { direct: { type: 'boolean' as const }, ...ADMIN_CLIENT_OPTIONS };
/** What each subcommand takes besides --json and the source options. */
const SUBCOMMAND_OPTIONS = {
  list: { org: { type: 'string' }, status: { type: 'string' } },
  revoke: { reason: { type: 'string' } },
  expiring: { within: { type: 'string' } },
  unrenewed: { within: { type: 'string' } },
} as const;
/** Every option of `moat certs` and `moat tpps`, in parseArgs form. */
export const OPTIONS = {
  json: { type: 'boolean' as const },
  ...SOURCE_OPTIONS,
  ...SUBCOMMAND_OPTIONS.list,
  ...SUBCOMMAND_OPTIONS.revoke,
  ...SUBCOMMAND_OPTIONS.expiring,
};
const OFFLINE_HINT = ' (with the server stopped, add --direct to use the database itself)';

/** A certificate as the CLI shows it: the admin API never hands out the PEMs. */
type CertificateView = Omit<RegisteredCertificate, 'pem' | 'issuerPem'>;

/** What the certificate commands need of the registry, whether reached through the admin API or directly. */
interface RegistryView {
  list(filter?: { orgId?: string; status?: CertificateStatus }): Promise<CertificateView[]>;
  find(thumbprint: string): Promise<CertificateView | undefined>;
  expiring(before: Date): Promise<CertificateView[]>;
  events(thumbprint: string): Promise<CertificateEvent[]>;
  organisations(): Promise<TppOrganisation[]>;
  /** As the operator; false when it already was revoked. */
  revoke(thumbprint: string, by: { source: 'operator'; reason: string }): Promise<boolean>;
}

/** `moat certs …`: the operator's view of the TPP certificate registry. */
export async function certsCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  const options = {
    json: { type: 'boolean' as const },
    ...SOURCE_OPTIONS,
    ...(Object.hasOwn(SUBCOMMAND_OPTIONS, sub ?? '') ? SUBCOMMAND_OPTIONS[sub as keyof typeof SUBCOMMAND_OPTIONS] : {}),
  };
  // The thumbprint comes right after show|revoke, and may start with "-" (base64url: "-hX…" is a
  // thumbprint, not -h); only an option of the command's own where it belongs means it is missing.
  const thumbprint = (sub === 'show' || sub === 'revoke') && rest[0] !== undefined && !isOwnOption(rest[0], options) ? rest.shift() : undefined;
  if (!['list', 'show', 'revoke', 'expiring', 'unrenewed'].includes(sub ?? '') || (sub === 'show' || sub === 'revoke') !== (thumbprint !== undefined)) {
    io.stderr.write(USAGE);
    return EXIT_USAGE;
  }
  const result = loadConfigOrReport(rest, { ...io, env: withoutAdminClientEnv(io.env) }, options);
  if ('exitCode' in result) return result.exitCode;
  const { values } = result;
  const json = values.json === true;

  if (sub === 'list' && values.status !== undefined && !(CERTIFICATE_STATUSES as readonly string[]).includes(values.status as string)) {
    io.stderr.write(`moat: --status must be one of ${CERTIFICATE_STATUSES.join(', ')}\n`);
    return EXIT_USAGE;
  }
  let within: number | undefined;
  if (sub === 'unrenewed') {
    within = typeof values.within === 'string' ? parseDuration(values.within) : Math.max(0, ...result.loaded.config.certificates.expiryWarningDays) * 86_400;
    if (within === undefined) {
      io.stderr.write('moat: --within takes a duration such as 30d, 12h or 90m\n');
      return EXIT_USAGE;
    }
    if (values.direct === true) {
      io.stderr.write('moat: certs unrenewed asks the running server (its expiry notices); it has no --direct form\n');
      return EXIT_USAGE;
    }
    return withAdminClient(
      result.loaded.config,
      values,
      io,
      async (admin) => {
        const list = await admin.request<UnrenewedView[]>('GET', `/renewals?within=${within}`);
        io.stdout.write(json ? `${JSON.stringify(list, null, 2)}\n` : unrenewedTable(list));
        return EXIT_OK;
      },
      OFFLINE_HINT,
    );
  }
  if (sub === 'expiring') {
    within = parseDuration(typeof values.within === 'string' ? values.within : '30d');
    if (within === undefined) {
      io.stderr.write('moat: --within takes a duration such as 30d, 12h or 90m\n');
      return EXIT_USAGE;
    }
  }
  if (sub === 'revoke' && (typeof values.reason !== 'string' || values.reason.trim() === '')) {
    io.stderr.write('moat: certs revoke needs --reason TEXT (it is recorded in the certificate history)\n');
    return EXIT_USAGE;
  }

  return withRegistry(result.loaded.config, values, io, async (registry) => {
    if (sub === 'list') {
      const list = await registry.list({
        ...(typeof values.org === 'string' ? { orgId: values.org } : {}),
        ...(typeof values.status === 'string' ? { status: values.status as CertificateStatus } : {}),
      });
      io.stdout.write(json ? `${JSON.stringify(list.map(summary), null, 2)}\n` : table(list));
      return EXIT_OK;
    }
    if (sub === 'expiring') {
      const list = await registry.expiring(new Date(Date.now() + within! * 1000));
      io.stdout.write(
        json ? `${JSON.stringify(list.map(summary), null, 2)}\n` : list.length === 0 ? 'no active certificate expires in that window\n' : table(list),
      );
      return EXIT_OK;
    }
    const found = await registry.find(thumbprint!);
    if (found === undefined) {
      io.stderr.write(`moat: no certificate with thumbprint ${thumbprint}\n`);
      return EXIT_FAILURE;
    }
    if (sub === 'show') {
      const events = await registry.events(found.thumbprint);
      io.stdout.write(json ? `${JSON.stringify({ ...summary(found), events }, null, 2)}\n` : describe(found, events));
      return EXIT_OK;
    }
    const changed = await registry.revoke(found.thumbprint, { source: 'operator', reason: values.reason as string });
    io.stdout.write(
      changed
        ? `revoked ${found.thumbprint}: its clients (${found.clients.join(', ') || 'none'}) can no longer authenticate with it, and tokens bound to it are inactive\n`
        : `${found.thumbprint} was already revoked\n`,
    );
    return EXIT_OK;
  });
}

function isOwnOption(arg: string, options: Record<string, unknown>): boolean {
  return arg === '--' || arg === '-h' || arg === '--help' || (arg.startsWith('--') && Object.hasOwn(options, arg.slice(2).split('=')[0]!));
}

/** `moat tpps list`: organisations, their clients and certificates. */
export async function tppsCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'list') {
    io.stderr.write(USAGE);
    return EXIT_USAGE;
  }
  const result = loadConfigOrReport(rest, { ...io, env: withoutAdminClientEnv(io.env) }, { json: { type: 'boolean' }, ...SOURCE_OPTIONS });
  if ('exitCode' in result) return result.exitCode;
  return withRegistry(result.loaded.config, result.values, io, async (registry) => {
    const orgs = await registry.organisations();
    if (result.values.json === true) {
      io.stdout.write(`${JSON.stringify(orgs, null, 2)}\n`);
      return EXIT_OK;
    }
    for (const org of orgs) {
      io.stdout.write(`${org.orgId}  ${org.name}  (${org.status}, directory ${org.directoryIssuer})\n`);
      for (const c of org.clients) io.stdout.write(`  client ${c.clientId}  software ${c.softwareId}\n`);
      for (const cert of await registry.list({ orgId: org.orgId }))
        io.stdout.write(`  cert   ${cert.thumbprint}  ${cert.status}  expires ${cert.notAfter.toISOString().slice(0, 10)}\n`);
    }
    if (orgs.length === 0) io.stdout.write('no TPP has registered\n');
    return EXIT_OK;
  });
}

/** The registry through the admin API, or with `--direct` from the database itself. */
async function withRegistry(config: MoatConfig, values: Record<string, unknown>, io: CliIo, fn: (registry: RegistryView) => Promise<number>): Promise<number> {
  if (values.direct === true) return withDirectDatabase(config, io, ({ sql, audit }) => fn(createSqlCertificateRegistry(sql, audit)));
  return withAdminClient(config, values, io, (admin) => fn(adminRegistry(admin)), OFFLINE_HINT);
}

/** JSON dates back to `Date`s, so both sources print alike. */
function reviveCertificate(c: CertificateView): CertificateView {
  const date = (v: Date | undefined) => (v === undefined ? undefined : new Date(v));
  const { revokedAt, lastCheckedAt, ...rest } = c;
  return {
    ...rest,
    notBefore: new Date(c.notBefore),
    notAfter: new Date(c.notAfter),
    ...(revokedAt === undefined ? {} : { revokedAt: date(revokedAt)! }),
    ...(lastCheckedAt === undefined ? {} : { lastCheckedAt: date(lastCheckedAt)! }),
  };
}

function adminRegistry(admin: AdminClient): RegistryView {
  const path = (thumbprint: string) => `/certificates/${encodeURIComponent(thumbprint)}`;
  const orUndefined = async <T>(pending: Promise<T>): Promise<T | undefined> => {
    try {
      return await pending;
    } catch (err) {
      if (err instanceof AdminApiError && err.status === 404) return undefined;
      throw err;
    }
  };
  const listed = async (query: Record<string, string>) =>
    (await admin.request<CertificateView[]>('GET', `/certificates?${new URLSearchParams(query)}`)).map(reviveCertificate);
  return {
    list: (filter = {}) =>
      listed({ ...(filter.orgId === undefined ? {} : { org: filter.orgId }), ...(filter.status === undefined ? {} : { status: filter.status }) }),
    expiring: (before) => listed({ expiringWithin: String(Math.max(0, Math.ceil((before.getTime() - Date.now()) / 1000))) }),
    find: async (thumbprint) => {
      const found = await orUndefined(admin.request<CertificateView>('GET', path(thumbprint)));
      return found === undefined ? undefined : reviveCertificate(found);
    },
    events: async (thumbprint) =>
      (await admin.request<{ events: CertificateEvent[] }>('GET', path(thumbprint))).events.map((e) => ({ ...e, at: new Date(e.at) })),
    organisations: () => admin.request<TppOrganisation[]>('GET', '/tpps'),
    revoke: async (thumbprint, by) => (await admin.request<{ changed: boolean }>('POST', `${path(thumbprint)}/revoke`, { reason: by.reason })).changed,
  };
}

/** A certificate nobody has renewed, as `GET /renewals` answers (dates as JSON strings). */
interface UnrenewedView {
  thumbprint: string;
  orgId: string;
  subjectDn: string;
  usage: string;
  notAfter: string;
  daysLeft: number;
  clients: { clientId: string; notices: { horizonDays: number; status: string; attempts: number; lastError?: string; deliveredAt?: string }[] }[];
}

function unrenewedTable(list: UnrenewedView[]): string {
  if (list.length === 0) return 'every certificate expiring in that window has a successor registered\n';
  const lines: string[] = [];
  for (const c of list) {
    lines.push(`${c.thumbprint}  ${c.orgId}  ${c.usage}  expires ${c.notAfter.slice(0, 10)} (${c.daysLeft} d)  ${c.subjectDn}`);
    for (const client of c.clients) {
      const told = client.notices.map(
        (n) =>
          `${n.horizonDays}d ${n.status}${n.status === 'pending' || n.status === 'failed' ? ` after ${n.attempts} attempt(s)${n.lastError === undefined ? '' : `: ${n.lastError}`}` : ''}`,
      );
      lines.push(`  client ${client.clientId}  notices: ${told.join('; ') || 'none yet'}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)([dhm]?)$/.exec(text.trim());
  if (match === null) return undefined;
  const unit = { d: 86400, h: 3600, m: 60, '': 86400 }[match[2] as 'd' | 'h' | 'm' | ''];
  return Number(match[1]) * unit;
}

function summary(c: CertificateView) {
  const { pem: _pem, issuerPem: _issuer, ...rest } = c as RegisteredCertificate;
  return { ...rest, daysLeft: Math.floor((c.notAfter.getTime() - Date.now()) / 86_400_000) };
}

function table(list: CertificateView[]): string {
  if (list.length === 0) return 'no certificates\n';
  return `${list
    .map((c) =>
      [
        c.thumbprint,
        c.status.padEnd(7),
        c.orgId,
        `expires ${c.notAfter.toISOString().slice(0, 10)} (${Math.floor((c.notAfter.getTime() - Date.now()) / 86_400_000)} d)`,
        c.psd2 === undefined ? '' : `PSD2 ${c.psd2.roles.join('+')} ${c.psd2.ncaId}`,
        c.subjectDn,
      ]
        .filter(Boolean)
        .join('  '),
    )
    .join('\n')}\n`;
}

function describe(c: CertificateView, events: { event: string; detail: Record<string, unknown>; at: Date }[]): string {
  const lines = [
    `thumbprint   ${c.thumbprint} (x5t#S256)`,
    `status       ${c.status}${c.revokedAt === undefined ? '' : ` since ${c.revokedAt.toISOString()} (${c.revocationSource}: ${c.revocationReason})`}`,
    `organisation ${c.orgId}${c.organizationIdentifier === undefined ? '' : ` · organizationIdentifier ${c.organizationIdentifier}`}`,
    `subject      ${c.subjectDn}`,
    `issuer       ${c.issuerDn}`,
    `serial       ${c.serial}`,
    `valid        ${c.notBefore.toISOString()} → ${c.notAfter.toISOString()}`,
    `key          ${c.keyType} ${c.keySize}`,
    `usage        ${c.usage}`,
    ...(c.sans.length === 0 ? [] : [`SANs         ${c.sans.join(', ')}`]),
    ...(c.psd2 === undefined ? [] : [`PSD2         roles ${c.psd2.roles.join(', ')} · NCA ${c.psd2.ncaName} (${c.psd2.ncaId})`]),
    `revocation   OCSP ${c.ocspUrls.join(', ') || '—'} · CRL ${c.crlUrls.join(', ') || '—'}`,
    `last check   ${c.lastCheckedAt === undefined ? 'never' : `${c.lastCheckedAt.toISOString()} ${c.lastCheckResult ?? ''}`}`,
    `clients      ${c.clients.join(', ') || 'none'}`,
    'history:',
    ...events.map((e) => `  ${e.at.toISOString()}  ${e.event}  ${JSON.stringify(e.detail)}`),
  ];
  return `${lines.join('\n')}\n`;
}

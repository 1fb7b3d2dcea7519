import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { MoatConfig } from '../config/schema.ts';
import { EXIT_FAILURE, type CliIo } from './io.ts';

/*
 * The CLI's way to a running Moat: its admin listener (the same API operators' tooling uses), so
 * a command acts through the server — on every instance at once, audited as the operator's —
 * rather than behind its back in the database. node:https rather than fetch: fetch cannot present
 * a client certificate, and the operator's certificate is how an mTLS admin listener knows them.
 */

export class AdminApiError extends Error {
  /** The HTTP status; 0 when no answer came (unreachable, TLS failure, unreadable credentials). */
  readonly status: number;
  /** No connection to the listener at all (nothing answered). */
  readonly unreachable: boolean;
  constructor(status: number, message: string, options: { unreachable?: boolean } = {}) {
    super(message);
    this.name = 'AdminApiError';
    this.status = status;
    this.unreachable = options.unreachable ?? false;
  }
}

export interface AdminClient {
  readonly url: string;
  request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
}

/** Where the admin listener is and how to authenticate to it; each falls back to the configuration. */
export interface AdminClientOptions {
  url?: string;
  tokenFile?: string;
  /** The operator's certificate and key (PEM), for an `admin.tls` listener. */
  certFile?: string;
  keyFile?: string;
  /** The CA that issued the admin listener's certificate, when the system's do not know it. */
  caFile?: string;
}

/** The options every admin-API command takes (`parseArgs` form). */
export const ADMIN_CLIENT_OPTIONS = {
  'admin-url': { type: 'string' as const },
  'admin-token-file': { type: 'string' as const },
  'admin-cert': { type: 'string' as const },
  'admin-key': { type: 'string' as const },
  'admin-ca': { type: 'string' as const },
};

export const ADMIN_CLIENT_USAGE = `admin listener options:
  --admin-url URL          default: the configured admin listener (https when admin.tls is set)
  --admin-cert FILE        your operator certificate (PEM), for an admin listener with admin.tls
  --admin-key FILE         its private key (PEM)
  --admin-ca FILE          the CA of the admin listener's own certificate, if not a system CA
  --admin-token-file FILE  the admin token instead (default: admin.tokenFile; in the sandbox, admin.token
                           in the server's data directory: run where the server runs, or give --data-dir DIR)
  (or MOAT_ADMIN_URL, MOAT_ADMIN_CERT, MOAT_ADMIN_KEY, MOAT_ADMIN_CA, MOAT_ADMIN_TOKEN_FILE)
`;

const ENV_NAMES = {
  url: 'MOAT_ADMIN_URL',
  tokenFile: 'MOAT_ADMIN_TOKEN_FILE',
  certFile: 'MOAT_ADMIN_CERT',
  keyFile: 'MOAT_ADMIN_KEY',
  caFile: 'MOAT_ADMIN_CA',
} as const satisfies Record<keyof AdminClientOptions, string>;
const FLAG_NAMES = {
  url: 'admin-url',
  tokenFile: 'admin-token-file',
  certFile: 'admin-cert',
  keyFile: 'admin-key',
  caFile: 'admin-ca',
} as const satisfies Record<keyof AdminClientOptions, keyof typeof ADMIN_CLIENT_OPTIONS>;

/**
 * The environment without the CLI's MOAT_ADMIN_* names: they say how to reach the server, they are
 * not configuration keys (which an unknown MOAT_* name would be taken for, and refused).
 */
export function withoutAdminClientEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const names: string[] = Object.values(ENV_NAMES);
  return Object.fromEntries(Object.entries(env).filter(([name]) => !names.includes(name)));
}

/** The admin client options from parsed flags, then the MOAT_ADMIN_* environment. */
export function adminClientOptions(values: Record<string, unknown>, env: NodeJS.ProcessEnv): AdminClientOptions {
  const options: AdminClientOptions = {};
  for (const key of Object.keys(ENV_NAMES) as (keyof AdminClientOptions)[]) {
    const flag = values[FLAG_NAMES[key]];
    const value = typeof flag === 'string' ? flag : env[ENV_NAMES[key]];
    if (value !== undefined && value !== '') options[key] = value;
  }
  return options;
}

function readCredential(what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new AdminApiError(0, `cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

/** OpenSSL's and node's codes for a server certificate the client does not trust. */
const SERVER_CERTIFICATE_ERRORS =
  /^(?:ERR_TLS_CERT_ALTNAME_INVALID|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(?:_LOCALLY)?|CERT_\w+)$/;

function unreachable(url: string, err: Error & { code?: string }): AdminApiError {
  if (err.code !== undefined && SERVER_CERTIFICATE_ERRORS.test(err.code)) {
    return new AdminApiError(
      0,
      `the admin listener at ${url} presented a certificate this CLI does not trust (${err.message}); pass the CA that issued it with --admin-ca FILE, and check that the URL's host is in its subjectAltName`,
    );
  }
  return new AdminApiError(
    0,
    `the admin listener at ${url} cannot be reached (${err.message}); is Moat running, and is admin.host/admin.port (or --admin-url) right? With admin.tls the URL is https://`,
    { unreachable: true },
  );
}

/** What to do about a refusal, after the server's own reason. */
function refusalHint(status: number, missingToken: string | undefined): string {
  if (status !== 401) return '';
  return ` (${missingToken === undefined ? '' : `${missingToken}; or `}give your operator certificate with --admin-cert FILE --admin-key FILE, or the admin token with --admin-token-file FILE)`;
}

/**
 * The admin token: from `--admin-token-file`, else `admin.tokenFile` of the configuration — in the
 * sandbox the one the server generated in its data directory. A configured file that is not there
 * is no error yet (no server may be running, or the operator presents a certificate): a refusal
 * then says where the token was looked for (`missing`).
 */
function adminToken(config: MoatConfig, options: AdminClientOptions): { token?: string; missing?: string } {
  if (options.tokenFile !== undefined) return { token: readCredential('the admin token file', options.tokenFile).toString('utf8').trim() };
  const file = config.admin.tokenFile;
  if (file === undefined) return {};
  if (!existsSync(file)) {
    return {
      missing: `there is no admin token at ${file}${
        config.mode === 'sandbox'
          ? ', where the sandbox server writes it when it starts: run this where the server runs, or pass its data directory with --data-dir DIR'
          : ' (admin.tokenFile)'
      }`,
    };
  }
  return { token: readCredential('the admin token file', file).toString('utf8').trim() };
}

/** `--admin-url` (or MOAT_ADMIN_URL) wins; otherwise the configured admin listener. */
export function createAdminClient(config: MoatConfig, options: AdminClientOptions): AdminClient {
  const host = config.admin.host === '0.0.0.0' || config.admin.host === '::' ? '127.0.0.1' : config.admin.host;
  const scheme = config.admin.tls === undefined ? 'http' : 'https';
  const url = (options.url ?? `${scheme}://${host.includes(':') ? `[${host}]` : host}:${config.admin.port}`).replace(/\/$/, '');
  if ((options.certFile === undefined) !== (options.keyFile === undefined)) throw new AdminApiError(0, 'give both --admin-cert and --admin-key, or neither');
  const { token, missing: missingToken } = adminToken(config, options);
  const tls = {
    ...(options.certFile === undefined ? {} : { cert: readCredential('the operator certificate', options.certFile) }),
    ...(options.keyFile === undefined ? {} : { key: readCredential('the operator key', options.keyFile) }),
    ...(options.caFile === undefined ? {} : { ca: readCredential('the admin CA', options.caFile) }),
  };
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new AdminApiError(0, `the admin URL ${url} must be http:// or https://`);

  const send = (method: string, path: string, payload: string | undefined) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const headers = {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
      };
      const onResponse = (res: IncomingMessage) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      };
      const address = new URL(path, `${url}/`);
      const common = { method, headers, timeout: 10_000 };
      const req = target.protocol === 'https:' ? httpsRequest(address, { ...common, ...tls }, onResponse) : httpRequest(address, common, onResponse);
      req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
      req.on('error', reject);
      req.end(payload);
    });

  return {
    url,
    async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
      let res: { status: number; text: string };
      try {
        res = await send(method, path.replace(/^\//, ''), body === undefined ? undefined : JSON.stringify(body));
      } catch (err) {
        throw unreachable(url, err as Error);
      }
      let parsed: unknown;
      try {
        parsed = res.text === '' ? undefined : (JSON.parse(res.text) as unknown);
      } catch {
        throw new AdminApiError(res.status, `${url} answered ${res.status} with something other than JSON: is --admin-url the admin listener?`);
      }
      if (res.status < 200 || res.status > 299) {
        const e = parsed as { error?: string; error_description?: string } | undefined;
        throw new AdminApiError(
          res.status,
          `${res.status} ${e?.error ?? ''}: ${e?.error_description ?? res.text}${refusalHint(res.status, missingToken)}`.trim(),
        );
      }
      return parsed as T;
    },
  };
}

/**
 * Runs a command against the admin API: builds the client from the flags, environment and
 * configuration, and reports an `AdminApiError` (unreachable, refused, failed) as the exit status;
 * `whenUnreachable` is what else the operator can do when no server answers.
 */
export async function withAdminClient(
  config: MoatConfig,
  values: Record<string, unknown>,
  io: CliIo,
  run: (admin: AdminClient) => Promise<number>,
  whenUnreachable = '',
): Promise<number> {
  try {
    return await run(createAdminClient(config, adminClientOptions(values, io.env)));
  } catch (err) {
    if (!(err instanceof AdminApiError)) throw err;
    io.stderr.write(`moat: ${err.message}${err.unreachable ? whenUnreachable : ''}\n`);
    return EXIT_FAILURE;
  }
}

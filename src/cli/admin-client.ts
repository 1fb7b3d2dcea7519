import { readFileSync } from 'node:fs';
import type { MoatConfig } from '../config/schema.ts';

/*
 * The CLI's way to a running Moat: its admin listener (the same API operators' tooling uses), so
 * a command acts through the server — on every instance at once, audited as the operator's —
 * rather than behind its back in the database.
 */

export class AdminApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'AdminApiError';
    this.status = status;
  }
}

export interface AdminClient {
  readonly url: string;
  request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T>;
}

/** `--admin-url` (or MOAT_ADMIN_URL) wins; otherwise the configured admin listener. */
export function createAdminClient(config: MoatConfig, options: { url?: string; tokenFile?: string }): AdminClient {
  const host = config.admin.host === '0.0.0.0' || config.admin.host === '::' ? '127.0.0.1' : config.admin.host;
  const url = (options.url ?? `http://${host.includes(':') ? `[${host}]` : host}:${config.admin.port}`).replace(/\/$/, '');
  const tokenFile = options.tokenFile ?? config.admin.tokenFile;
  const token = tokenFile === undefined ? undefined : readFileSync(tokenFile, 'utf8').trim();
  return {
    url,
    async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
      let res: Response;
      try {
        res = await fetch(`${url}${path}`, {
          method,
          headers: {
            ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(10_000),
        });
      } catch (err) {
        throw new AdminApiError(0, `the admin listener at ${url} cannot be reached (${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}); is Moat running, and is admin.host/admin.port (or --admin-url) right?`);
      }
      const text = await res.text();
      const parsed = text === '' ? undefined : JSON.parse(text) as unknown;
      if (!res.ok) {
        const e = parsed as { error?: string; error_description?: string } | undefined;
        throw new AdminApiError(res.status, `${res.status} ${e?.error ?? ''}: ${e?.error_description ?? text}`.trim());
      }
      return parsed as T;
    },
  };
}

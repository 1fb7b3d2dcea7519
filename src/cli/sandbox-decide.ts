import { parseArgs } from 'node:util';
import { SANDBOX_CUSTOMERS } from '../customers/sandbox-customers.ts';
import { BANK_APP_API_PATH } from '../sandbox/bank-app-api.ts';
import { totpCode } from '../sca/totp.ts';
import type { CliIo } from './io.ts';
import { configArgs, loadConfigOrReport } from './load-config-or-report.ts';
import { postToServer, sandboxServerCa } from './sandbox-server.ts';

export const USAGE = `usage: moat sandbox approve|deny --customer NAME [--accounts ID,ID] [--request=AUTH_REQ_ID]
  decides a decoupled authorisation (CIBA) request as the sandbox customer would on the bank's app:
  signs in with the customer's published sandbox password and a one-time code from their published
  authenticator secret (strong customer authentication), then approves or denies
options: --config FILE
  --customer NAME   a sandbox customer (alice, bob)
  --accounts IDS    approve: the accounts to share or pay from, comma separated (default: all offered; a payment: the first)
  --permissions G   approve: keep only these permission groups, comma separated
  --request=ID      the auth_req_id (default: the oldest request waiting for the customer); with =, as an
                    auth_req_id may start with a dash
  --code CODE       the one-time code to use instead of computing it
  --issuer URL      the server (default: the configured issuer)
  --ca FILE         the server's CA (default: the sandbox server CA under --data-dir)
  --data-dir DIR    the server's data directory (default: dataDir, ./data)
`;

/** Every option of `moat sandbox approve|deny`, in parseArgs form. */
export const OPTIONS = {
  customer: { type: 'string' },
  accounts: { type: 'string' },
  permissions: { type: 'string' },
  request: { type: 'string' },
  code: { type: 'string' },
  issuer: { type: 'string' },
  ca: { type: 'string' },
  config: { type: 'string' },
  'data-dir': { type: 'string' },
} as const;

const list = (value: string | undefined) =>
  value
    ?.split(',')
    .map((v) => v.trim())
    .filter(Boolean);

/** `moat sandbox approve` and `moat sandbox deny`. */
export function sandboxDecideCommand(decision: 'approve' | 'deny') {
  return async (args: string[], io: CliIo): Promise<number> => {
    let values;
    try {
      ({ values } = parseArgs({ args, options: OPTIONS, strict: true }));
    } catch (err) {
      io.stderr.write(`moat: ${(err as Error).message}\n${USAGE}`);
      return 2;
    }
    const customer = SANDBOX_CUSTOMERS.find((c) => c.username === values.customer);
    if (customer === undefined) {
      io.stderr.write(`moat: --customer must be a sandbox customer (${SANDBOX_CUSTOMERS.map((c) => c.username).join(', ')})\n${USAGE}`);
      return 2;
    }
    const loaded = loadConfigOrReport(configArgs(values), io);
    if ('exitCode' in loaded) return loaded.exitCode;
    const { config } = loaded.loaded;
    const issuer = values.issuer ?? config.issuer;
    const ca = await sandboxServerCa(values.ca, config, io);
    if (ca === undefined) return 1;
    const accounts = list(values.accounts);
    const groups = list(values.permissions);
    const body = JSON.stringify({
      username: customer.username,
      password: customer.password,
      code: values.code ?? totpCode(customer.totpSecret, new Date()),
      decision,
      ...(values.request === undefined ? {} : { request: values.request }),
      ...(accounts === undefined ? {} : { accounts }),
      ...(groups === undefined ? {} : { permission_groups: groups }),
    });
    const url = new URL(`${issuer.replace(/\/$/, '')}${BANK_APP_API_PATH}/decisions`);
    try {
      const { status, text } = await postToServer(url, { ca, json: body });
      const answer = JSON.parse(text) as { request?: string; decision?: string; consent_id?: string; error?: string; error_description?: string };
      if (status !== 200) {
        io.stderr.write(`moat: the bank app refused (HTTP ${status}, ${answer.error ?? 'error'}): ${answer.error_description ?? text}\n`);
        return 1;
      }
      io.stdout.write(`${answer.decision} request ${answer.request}${answer.consent_id === undefined ? '' : ` (consent ${answer.consent_id})`}\n`);
      return 0;
    } catch (err) {
      io.stderr.write(`moat: could not reach ${url.origin}: ${(err as Error).message}\n`);
      return 1;
    }
  };
}

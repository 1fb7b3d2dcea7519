import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { parseDistinguishedName, resolveAttributeType } from '../pki/distinguished-name.ts';
import { configSchema, type MoatConfig } from './schema.ts';
import { gatewayCheckProblems } from './gateway-check-schema.ts';

/** A configuration that cannot be used; `problems` name each bad key and what was expected. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[]) {
    super(`invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface LoadedConfig {
  config: MoatConfig;
  /** Where it came from, for the start-up banner and error messages. */
  source: string;
}

const ENV_PREFIX = 'MOAT_';

/**
 * Loads the YAML file (if any), applies MOAT_* environment overrides and validates the result.
 * `MOAT_STORAGE__POSTGRES_URL=…` sets `storage.postgresUrl`: `__` separates levels, the rest is
 * SCREAMING_SNAKE of the camelCase key. Values that parse as JSON (numbers, booleans, arrays) are
 * taken as such, anything else as a string. An unknown MOAT_* name is an error like an unknown YAML
 * key, so a typo in a deployment's environment cannot go unnoticed. `dataDir` (the CLI's
 * `--data-dir`, an absolute path) wins over both.
 */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv; cwd?: string; dataDir?: string } = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const explicit = options.file ?? env.MOAT_CONFIG;
  const file = explicit !== undefined ? resolve(cwd, explicit) : resolve(cwd, 'moat.yaml');
  let raw: unknown = {};
  let source = 'defaults';
  if (existsSync(file)) {
    source = file;
    try {
      raw = parseYaml(readFileSync(file, 'utf8')) ?? {};
    } catch (err) {
      throw new ConfigError(file, [`the file is not valid YAML: ${(err as Error).message}`]);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ConfigError(file, ['the file must hold a mapping of configuration keys']);
    }
  } else if (explicit !== undefined) {
    throw new ConfigError(file, ['the configuration file does not exist']);
  }
  const overridden = applyEnvOverrides(raw as Record<string, unknown>, env);
  if (overridden.length > 0) source += ` + env ${overridden.join(', ')}`;
  if (options.dataDir !== undefined) {
    (raw as Record<string, unknown>).dataDir = options.dataDir;
    source += ' + --data-dir';
  }
  return { config: validateConfig(raw, source, dirname(file)), source };
}

/** Validates a raw configuration object; relative paths are resolved against `baseDir`. */
export function validateConfig(raw: unknown, source: string, baseDir: string): MoatConfig {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(source, parsed.error.issues.map(describeIssue));
  const config = resolvePaths(parsed.data, baseDir);
  const problems = crossFieldProblems(config);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return withSandboxAdminToken(config);
}

/** The file of the token the sandbox generates for its admin listener, under its data directory. */
export const SANDBOX_ADMIN_TOKEN_FILE = 'admin.token';

/**
 * In sandbox mode the admin listener is never open to whoever reaches it: without `admin.tokenFile`
 * or `admin.tls` its token lives in `<dataDir>/admin.token` (created at start), where the CLI,
 * reading the same configuration or given `--data-dir`, finds it.
 */
function withSandboxAdminToken(config: MoatConfig): MoatConfig {
  if (config.mode !== 'sandbox' || config.admin.tokenFile !== undefined || config.admin.tls !== undefined) return config;
  return { ...config, admin: { ...config.admin, tokenFile: join(config.dataDir, SANDBOX_ADMIN_TOKEN_FILE) } };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.length > 0 ? `${key}.` : '';
    return `${issue.keys.map((k) => where + k).join(', ')}: unknown key`;
  }
  return `${key}: ${issue.message}`;
}

/** Whether a factor that is SCA on its own (a user-verified passkey) is configured. */
function passkeysEnabled(config: MoatConfig): boolean {
  const passkeys = (config.sca as { passkeys?: { enabled?: boolean } }).passkeys;
  return passkeys?.enabled === true;
}

/** Rules that span several keys: production refuses every sandbox shortcut. */
function crossFieldProblems(config: MoatConfig): string[] {
  const problems: string[] = [];
  if (config.mode === 'production') {
    if (config.storage.postgresUrl === undefined) {
      problems.push('storage.postgresUrl: required in production (the embedded database is for the sandbox only)');
    }
    if (config.storage.redisUrl === undefined) {
      problems.push('storage.redisUrl: required in production (the in-process store is for the sandbox only)');
    }
    if (config.tls.terminate && (config.tls.certFile === undefined || config.tls.keyFile === undefined)) {
      problems.push('tls.certFile, tls.keyFile: required in production when Moat terminates TLS');
    }
    if (config.trustAnchors.length === 0) {
      problems.push('trustAnchors: at least one CA is required in production for tls_client_auth');
    }
    // PSD2 Art. 97 / RTS Art. 4: a password alone is one factor; real customers need two. (With
    // customers.source: oidc the bank's IdP authenticates, and its acr is checked at each sign-in.)
    const localCustomers = config.customers.source === 'local';
    if (localCustomers && !config.sca.totp.enabled && !passkeysEnabled(config)) {
      problems.push('sca.totp.enabled: production refuses password-only customer authentication (not SCA under PSD2 RTS Art. 4) — enable sca.totp or passkeys');
    }
    // Customers of the bank's IdP enrol one-time codes with Moat too (its linked step for payments).
    if (config.sca.totp.enabled && config.sca.totp.encryptionKey === undefined && config.sca.totp.encryptionKeyFile === undefined) {
      problems.push('sca.totp.encryptionKey or sca.totp.encryptionKeyFile: required in production (one-time-code secrets are encrypted at rest)');
    }
    if (config.keys.source === 'database' && config.keys.encryptionKey === undefined && config.keys.encryptionKeyFile === undefined) {
      problems.push(
        'keys.encryptionKey or keys.encryptionKeyFile: required in production with keys.source database (private signing keys are encrypted at rest)',
      );
    }
    if (config.ciba.enabled === true && config.ciba.bankApp === undefined) {
      problems.push(
        "ciba.bankApp: required in production when ciba.enabled is true (no customer could approve a backchannel request without the bank's app) — configure ciba.bankApp or leave ciba.enabled unset",
      );
    }
    if (config.accounts.source === 'sandbox') {
      problems.push("accounts.source: sandbox serves demo accounts; in production use http (the bank's account service) or database");
    }
    // On loopback too: a web page in a browser on the host can reach a loopback listener.
    if (config.admin.enabled && config.admin.tokenFile === undefined && config.admin.tls === undefined) {
      problems.push('admin.tokenFile or admin.tls: one is required in production — the admin listener needs operator authentication wherever it binds');
    }
  }
  if ((config.tls.certFile === undefined) !== (config.tls.keyFile === undefined)) {
    problems.push('tls.certFile, tls.keyFile: set both or neither');
  }
  if (!config.tls.terminate && config.trustedProxies.addresses.length === 0) {
    problems.push('trustedProxies.addresses: required when tls.terminate is false (a gateway must forward client certificates)');
  }
  const scopeNames = new Set(Object.keys(config.scopes));
  config.resourceServers.forEach((rs, i) => {
    for (const scope of rs.scopes) {
      if (!scopeNames.has(scope)) problems.push(`resourceServers.${i}.scopes: unknown scope "${scope}" (not in scopes)`);
    }
  });
  config.directories.forEach((d, i) => {
    try {
      if (d.orgIdAttribute !== undefined) resolveAttributeType(d.orgIdAttribute);
    } catch {
      problems.push(`directories.${i}.orgIdAttribute: "${d.orgIdAttribute}" is not a known attribute name or dotted OID`);
    }
  });
  config.admin.tls?.allowedSubjects?.forEach((dn, i) => {
    try {
      parseDistinguishedName(dn);
    } catch (err) {
      problems.push(`admin.tls.allowedSubjects.${i}: "${dn}" is not an RFC 4514 distinguished name (${(err as Error).message})`);
    }
  });
  problems.push(...upstreamIdpProblems(config));
  problems.push(...acmeProblems(config));
  problems.push(...gatewayCheckProblems(config.gatewayCheck, config.resourceServers));
  const names = config.directories.map((d) => d.issuer);
  if (new Set(names).size !== names.length) problems.push('directories: two directories share an issuer');
  for (const reserved of ['openid', 'offline_access']) {
    if (scopeNames.has(reserved)) problems.push(`scopes.${reserved}: built in, do not configure it`);
  }
  return problems;
}

/** customers.oidc: present exactly when the IdP is the source, and able to tell SCA apart. */
function upstreamIdpProblems(config: MoatConfig): string[] {
  const { source, oidc } = config.customers;
  if (source === 'oidc' && oidc === undefined) return ["customers.oidc: required when customers.source is oidc (the bank's OpenID Provider)"];
  if (source !== 'oidc' && oidc !== undefined) return ['customers.oidc: set customers.source to oidc to use it (it is ignored otherwise)'];
  if (oidc === undefined) return [];
  const problems: string[] = [];
  if (new URL(oidc.issuer).origin === new URL(config.issuer).origin) problems.push('customers.oidc.issuer: the IdP cannot be Moat itself');
  // An IdP login that cannot be SCA would refuse every customer (RTS Art. 4 needs it for every consent).
  if (oidc.sca.acrValues.length === 0 && oidc.sca.amrCombinations.length === 0) {
    problems.push('customers.oidc.sca: set acrValues or amrCombinations — which upstream logins count as strong customer authentication');
  }
  return problems;
}

/** acme: everything an order needs, and somewhere to keep what it brings. */
function acmeProblems(config: MoatConfig): string[] {
  const { acme } = config;
  const problems: string[] = [];
  if (!acme.enabled) {
    if (acme.accountServiceClient.enabled) problems.push('acme.accountServiceClient.enabled: needs acme.enabled (and acme.directoryUrl)');
    return problems;
  }
  if (acme.directoryUrl === undefined) problems.push("acme.directoryUrl: required when acme.enabled is true (the ACME directory of the bank's CA)");
  if (acme.server.enabled && config.tls.terminate && (config.tls.certFile === undefined || config.tls.keyFile === undefined)) {
    problems.push('tls.certFile, tls.keyFile: required with acme.server.enabled — where the issued certificate and its key are kept between restarts');
  }
  if (acme.accountServiceClient.enabled) {
    if (config.accounts.source !== 'http')
      problems.push('acme.accountServiceClient.enabled: needs accounts.source http (the client certificate is the one presented to accounts.http.url)');
    if (acme.accountServiceClient.domains === undefined)
      problems.push('acme.accountServiceClient.domains: required — the DNS names the account service knows Moat by');
  }
  // Each worker would renew on its own and write the same files.
  if (config.workers !== 1) problems.push('workers: acme renews certificates in a single process; set workers to 1 with acme.enabled');
  return problems;
}

function resolvePaths(config: MoatConfig, baseDir: string): MoatConfig {
  const at = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const maybe = (p: string | undefined) => (p === undefined ? undefined : at(p));
  return {
    ...config,
    dataDir: at(config.dataDir),
    tls: { ...config.tls, certFile: maybe(config.tls.certFile), keyFile: maybe(config.tls.keyFile) },
    trustAnchors: config.trustAnchors.map(at),
    acme: {
      ...config.acme,
      caFile: maybe(config.acme.caFile),
      accountKeyFile: maybe(config.acme.accountKeyFile),
      externalAccountBinding:
        config.acme.externalAccountBinding === undefined
          ? undefined
          : { ...config.acme.externalAccountBinding, hmacKeyFile: maybe(config.acme.externalAccountBinding.hmacKeyFile) },
    },
    certificates: { ...config.certificates, expiryNotices: { ...config.certificates.expiryNotices, caFile: maybe(config.certificates.expiryNotices.caFile) } },
    keys: {
      ...config.keys,
      dir: at(config.keys.dir),
      encryptionKeyFile: maybe(config.keys.encryptionKeyFile),
      pkcs11: config.keys.pkcs11 === undefined ? undefined : { ...config.keys.pkcs11, pinFile: maybe(config.keys.pkcs11.pinFile) },
    },
    branding: { ...config.branding, logoFile: maybe(config.branding.logoFile) },
    admin: {
      ...config.admin,
      tokenFile: maybe(config.admin.tokenFile),
      tls:
        config.admin.tls === undefined
          ? undefined
          : {
              ...config.admin.tls,
              certFile: at(config.admin.tls.certFile),
              keyFile: at(config.admin.tls.keyFile),
              clientCaFiles: config.admin.tls.clientCaFiles.map(at),
            },
    },
    customers: { ...config.customers, oidc: resolveUpstreamIdpPaths(config.customers.oidc, at) },
    gatewayCheck:
      config.gatewayCheck === undefined
        ? undefined
        : {
            ...config.gatewayCheck,
            sharedSecretFile: maybe(config.gatewayCheck.sharedSecretFile),
            tls:
              config.gatewayCheck.tls === undefined
                ? undefined
                : {
                    ...config.gatewayCheck.tls,
                    certFile: at(config.gatewayCheck.tls.certFile),
                    keyFile: at(config.gatewayCheck.tls.keyFile),
                    clientCaFiles: config.gatewayCheck.tls.clientCaFiles.map(at),
                  },
          },
    directories: config.directories.map((d) => ({ ...d, jwksFile: maybe(d.jwksFile), jwksCaFile: maybe(d.jwksCaFile) })),
    accounts:
      config.accounts.http === undefined
        ? config.accounts
        : {
            ...config.accounts,
            http: {
              ...config.accounts.http,
              clientCertFile: at(config.accounts.http.clientCertFile),
              clientKeyFile: at(config.accounts.http.clientKeyFile),
              caFile: maybe(config.accounts.http.caFile),
            },
          },
    resourceServers: config.resourceServers.map((rs) =>
      rs.client === undefined ? rs : { ...rs, client: { ...rs.client, jwksFile: maybe(rs.client.jwksFile) } },
    ),
  };
}

function applyEnvOverrides(target: Record<string, unknown>, env: NodeJS.ProcessEnv): string[] {
  const applied: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || name === 'MOAT_CONFIG' || value === undefined) continue;
    const path = name.slice(ENV_PREFIX.length).split('__').map(snakeToCamel);
    let node = target;
    for (const segment of path.slice(0, -1)) {
      const next = node[segment];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) node[segment] = {};
      node = node[segment] as Record<string, unknown>;
    }
    node[path.at(-1)!] = parseEnvValue(value);
    applied.push(name);
  }
  return applied;
}

function snakeToCamel(s: string): string {
  return s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function parseEnvValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function resolveUpstreamIdpPaths(oidc: MoatConfig['customers']['oidc'], at: (p: string) => string): MoatConfig['customers']['oidc'] {
  if (oidc === undefined) return undefined;
  const clientAuth =
    oidc.clientAuth.method === 'private_key_jwt'
      ? { ...oidc.clientAuth, jwkFile: at(oidc.clientAuth.jwkFile) }
      : { ...oidc.clientAuth, certFile: at(oidc.clientAuth.certFile), keyFile: at(oidc.clientAuth.keyFile) };
  return { ...oidc, clientAuth, ...(oidc.caFile === undefined ? {} : { caFile: at(oidc.caFile) }) };
}

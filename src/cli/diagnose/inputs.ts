import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TPP_FILES } from '../../sandbox/tpp-credentials.ts';

/*
 * What `moat diagnose` works from: the flags, or the directory `moat sandbox tpp --out DIR` wrote
 * (the files are picked up by their names there; a flag given as well wins).
 */

/** What the TPP registered, as its local files say (registration.json, else tpp.json). */
export interface LocalRegistration {
  file: string;
  subjectDn?: string;
  redirectUris?: string[];
  scope?: string;
}

export interface DiagnoseInputs {
  issuer: string;
  certFile: string;
  keyFile: string;
  /** The CA to trust for the server's certificate; the system's CAs when absent. */
  caFile?: string;
  clientId?: string;
  signingKeyFile?: string;
  ssaFile?: string;
  /** The directory's public JWKS, to check the SSA's signature (`directory.public.jwks.json`). */
  directoryJwksFile?: string;
  redirectUri?: string;
  scope?: string;
  /** RFC 7592 registration access token: reads the registered metadata (the registered DN). */
  registrationToken?: string;
  localRegistration?: LocalRegistration;
  timeoutMs: number;
}

/** The flags of `moat diagnose`, as parseArgs returns them. */
export interface DiagnoseFlags {
  issuer?: string;
  cert?: string;
  key?: string;
  ca?: string;
  'client-id'?: string;
  'signing-key'?: string;
  ssa?: string;
  'redirect-uri'?: string;
  scope?: string;
  credentials?: string;
  'registration-token'?: string;
}

/** How long one connection or request may take before it counts as unanswered. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** The inputs, or a usage problem (exit 2) in words. */
export function resolveInputs(flags: DiagnoseFlags, cwd: string): { inputs: DiagnoseInputs } | { usage: string } {
  const path = (p: string | undefined) => (p === undefined ? undefined : resolve(cwd, p));
  let dir: string | undefined;
  const inDir = (name: string) => (dir !== undefined && existsSync(join(dir, name)) ? join(dir, name) : undefined);
  let summary: Record<string, unknown> | undefined;
  let localRegistration: LocalRegistration | undefined;

  if (flags.credentials !== undefined) {
    dir = resolve(cwd, flags.credentials);
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      return { usage: `--credentials ${flags.credentials} is not a directory (the one \`moat sandbox tpp --out DIR\` wrote)` };
    summary = readJsonObject(inDir(TPP_FILES.summary));
    const registration = readJsonObject(inDir(TPP_FILES.registration));
    const source = registration ?? summary;
    if (source !== undefined) {
      const redirectUris = stringArray(source.redirect_uris);
      localRegistration = {
        file: join(dir, registration === undefined ? TPP_FILES.summary : TPP_FILES.registration),
        ...(typeof source.tls_client_auth_subject_dn === 'string' ? { subjectDn: source.tls_client_auth_subject_dn } : {}),
        ...(redirectUris === undefined ? {} : { redirectUris }),
        ...(typeof source.scope === 'string' ? { scope: source.scope } : {}),
      };
    }
  }

  const issuer = flags.issuer ?? (typeof summary?.issuer === 'string' ? summary.issuer : undefined);
  if (issuer === undefined) return { usage: '--issuer URL is required (or --credentials DIR with a tpp.json naming it)' };
  if (!URL.canParse(issuer) || new URL(issuer).protocol !== 'https:' || new URL(issuer).search !== '' || new URL(issuer).hash !== '') {
    return { usage: `--issuer ${issuer} must be an https URL without query or fragment (the server's issuer identifier)` };
  }
  if (flags['redirect-uri'] !== undefined && !URL.canParse(flags['redirect-uri'])) return { usage: `--redirect-uri ${flags['redirect-uri']} is not a URL` };
  const certFile = path(flags.cert) ?? (dir === undefined ? undefined : join(dir, TPP_FILES.transportCert));
  const keyFile = path(flags.key) ?? (dir === undefined ? undefined : join(dir, TPP_FILES.transportKey));
  if (certFile === undefined || keyFile === undefined) return { usage: '--cert and --key are required (or --credentials DIR)' };

  // With a client to diagnose, the PAR uses the first redirect URI registered unless told otherwise.
  const redirectUri = flags['redirect-uri'] ?? (flags['client-id'] === undefined ? undefined : localRegistration?.redirectUris?.[0]);
  const caFile = path(flags.ca) ?? inDir(TPP_FILES.serverCa);
  const signingKeyFile = path(flags['signing-key']) ?? inDir(TPP_FILES.signingJwks);
  const ssaFile = path(flags.ssa) ?? inDir(TPP_FILES.ssa);
  const directoryJwksFile = inDir(TPP_FILES.directoryJwks);
  return {
    inputs: {
      issuer,
      certFile,
      keyFile,
      timeoutMs: DEFAULT_TIMEOUT_MS,
      ...(caFile === undefined ? {} : { caFile }),
      ...(flags['client-id'] === undefined ? {} : { clientId: flags['client-id'] }),
      ...(signingKeyFile === undefined ? {} : { signingKeyFile }),
      ...(ssaFile === undefined ? {} : { ssaFile }),
      ...(directoryJwksFile === undefined ? {} : { directoryJwksFile }),
      ...(redirectUri === undefined ? {} : { redirectUri }),
      ...(flags.scope === undefined ? {} : { scope: flags.scope }),
      ...(flags['registration-token'] === undefined ? {} : { registrationToken: flags['registration-token'] }),
      ...(localRegistration === undefined ? {} : { localRegistration }),
    },
  };
}

function readJsonObject(file: string | undefined): Record<string, unknown> | undefined {
  if (file === undefined) return undefined;
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined;
}

import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { DirectoryConfig } from '../config/schema.ts';

/** A directory Moat trusts to vouch for software (OBIE, Open Finance Brasil, the sandbox). */
export interface TrustedDirectory {
  name: string;
  issuer: string;
  /** The certificate subject attribute holding `orgIdPrefix` + the SSA's org_id. */
  orgIdAttribute: string;
  orgIdPrefix: string;
  /** The directory's role names → Moat's; names not listed are kept as they are. */
  roleMap: Readonly<Record<string, string>>;
  /** How old (now − `iat`) a software statement of this directory may be. */
  maxSsaAgeSeconds: number;
  /** Whether its software statements must carry `exp`. */
  requireSsaExp: boolean;
  /** Its signing keys: a local JWKS, or its jwks_uri fetched over TLS and cached by jose. */
  keys: JWTVerifyGetKey;
  /** For a JWKS file: reads it again and uses it from now on (throws, changing nothing, on a bad file). */
  reloadKeys?: () => void;
}

/** Directory signing keys rarely change: reused this long; an unknown kid refetches sooner (after the cooldown). */
const REMOTE_JWKS_CACHE_MS = 10 * 60 * 1000;

/** The default maximum age of a `uk-ob` directory's software statement: one day. */
export const UK_OB_MAX_SSA_AGE_SECONDS = 86_400;

/** What each claim style implies unless the directory's configuration says otherwise. */
const CLAIM_STYLES = {
  // UK OB: the directory's SSAs carry iss, iat and jti but no exp, and the OB DCR specification sets
  // no SSA lifetime (its freshness rule is the registration request's own exp). The directory issues
  // a statement on demand, and the statement is its view of the software at that moment (roles,
  // redirect URIs, organisation status): Moat takes one up to a day old — time to register one
  // statement with every bank in a batch, not to keep reusing it after the directory changed.
  'uk-ob': { orgIdAttribute: 'OU', orgIdPrefix: '', roleMap: {}, maxSsaAgeSeconds: UK_OB_MAX_SSA_AGE_SECONDS, requireSsaExp: false },
  // Open Finance Brasil DCR: roles DADOS (data) and PAGTO (payments); organizationIdentifier
  // OFBBR-<org_id> in the certificate; the directory's SSAs carry no exp and live 5 minutes from iat.
  brazil: { orgIdAttribute: '2.5.4.97', orgIdPrefix: 'OFBBR-', roleMap: { DADOS: 'AISP', PAGTO: 'PISP' }, maxSsaAgeSeconds: 300, requireSsaExp: false },
} as const;

/** A directory's JWKS file as a key set that `reload` replaces whole (a directory rotating its keys). */
function reloadableJwksFile(file: string): { keys: JWTVerifyGetKey; reload(): void } {
  const read = () => createLocalJWKSet(publicOnly(JSON.parse(readFileSync(file, 'utf8')) as JSONWebKeySet, file));
  let current = read();
  return {
    keys: (header, token) => current(header, token),
    reload() {
      current = read();
    },
  };
}

export function createDirectoryKeys(directories: readonly DirectoryConfig[]): Map<string, TrustedDirectory> {
  return new Map(
    directories.map((d) => {
      const style = CLAIM_STYLES[d.claimStyle ?? 'uk-ob'];
      const file = d.jwksFile === undefined ? undefined : reloadableJwksFile(d.jwksFile);
      return [
        d.issuer,
        {
          name: d.name,
          issuer: d.issuer,
          orgIdAttribute: d.orgIdAttribute ?? style.orgIdAttribute,
          orgIdPrefix: d.orgIdPrefix ?? style.orgIdPrefix,
          roleMap: d.roleMap ?? style.roleMap,
          requireSsaExp: d.requireSsaExp ?? style.requireSsaExp,
          maxSsaAgeSeconds: d.maxSsaAgeSeconds ?? style.maxSsaAgeSeconds,
          ...(file === undefined ? {} : { reloadKeys: file.reload }),
          keys:
            file !== undefined
              ? file.keys
              : createRemoteJWKSet(new URL(d.jwksUri!), {
                  cacheMaxAge: REMOTE_JWKS_CACHE_MS,
                  cooldownDuration: d.jwksRefetchCooldownSeconds * 1000,
                  ...(d.jwksCaFile === undefined ? {} : { [customFetch]: fetchTrusting(readFileSync(d.jwksCaFile, 'utf8')) }),
                }),
        },
      ];
    }),
  );
}

/** A directory's key file holds public keys; a private one is a misconfiguration worth stopping for. */
function publicOnly(jwks: JSONWebKeySet, file: string): JSONWebKeySet {
  if (typeof jwks !== 'object' || jwks === null || !Array.isArray(jwks.keys)) throw new Error(`${file}: not a JWKS`);
  if (jwks.keys.some((k) => 'd' in k)) throw new Error(`${file}: holds private key material; configure the directory's public JWKS`);
  return jwks;
}

/**
 * A fetch for jose's remote JWKS that also trusts `caPem` (global fetch takes no CA option): one
 * GET over node:https, the system CAs plus this one, jose's own timeout signal honoured.
 */
function fetchTrusting(caPem: string): typeof fetch {
  const ca = [...rootCertificates, caPem];
  return ((url: string | URL, init?: RequestInit) =>
    new Promise<Response>((resolve, reject) => {
      const req = request(
        new URL(String(url)),
        { method: 'GET', ca, headers: Object.fromEntries(new Headers(init?.headers).entries()), ...(init?.signal ? { signal: init.signal } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve(
              new Response(Buffer.concat(chunks), {
                status: res.statusCode ?? 502,
                headers: Object.entries(res.headers).flatMap(([k, v]) =>
                  v === undefined ? [] : [[k, Array.isArray(v) ? v.join(', ') : v] as [string, string]],
                ),
              }),
            ),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    })) as typeof fetch;
}

import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { DirectoryConfig } from '../config/schema.ts';

/** A directory Moat trusts to vouch for software (OBIE, Open Finance Brasil, the sandbox). */
export interface TrustedDirectory {
  name: string;
  issuer: string;
  orgIdAttribute: string;
  maxSsaAgeSeconds?: number;
  /** Its signing keys: a local JWKS, or its jwks_uri fetched over TLS and cached by jose. */
  keys: JWTVerifyGetKey;
}

/** Directory signing keys rarely change; an unknown kid triggers a refetch after this cooldown. */
const REMOTE_JWKS_CACHE_MS = 10 * 60 * 1000;
const REMOTE_JWKS_COOLDOWN_MS = 30 * 1000;

export function createDirectoryKeys(directories: readonly DirectoryConfig[]): Map<string, TrustedDirectory> {
  return new Map(directories.map((d) => [d.issuer, {
    name: d.name,
    issuer: d.issuer,
    orgIdAttribute: d.orgIdAttribute,
    ...(d.maxSsaAgeSeconds === undefined ? {} : { maxSsaAgeSeconds: d.maxSsaAgeSeconds }),
    keys: d.jwksFile !== undefined
      ? createLocalJWKSet(publicOnly(JSON.parse(readFileSync(d.jwksFile, 'utf8')) as JSONWebKeySet, d.jwksFile))
      : createRemoteJWKSet(new URL(d.jwksUri!), { cacheMaxAge: REMOTE_JWKS_CACHE_MS, cooldownDuration: REMOTE_JWKS_COOLDOWN_MS }),
  }]));
}

/** A directory's key file holds public keys; a private one is a misconfiguration worth stopping for. */
function publicOnly(jwks: JSONWebKeySet, file: string): JSONWebKeySet {
  if (!Array.isArray(jwks.keys)) throw new Error(`${file}: not a JWKS`);
  if (jwks.keys.some((k) => 'd' in k)) throw new Error(`${file}: holds private key material; configure the directory's public JWKS`);
  return jwks;
}

import { createHash, randomBytes } from 'node:crypto';
import type { MoatConfig } from './schema.ts';

/*
 * Security configuration as code: the effective configuration (the file, the MOAT_* overrides and
 * every default) as a flat map of dotted keys, its hash, and the key-by-key difference between two
 * of them — a file in review and a running instance. A secret (a PIN, a password, a URL that may
 * carry one) never leaves as its value: the hash counts only that it is set, and a description
 * carries a salted digest, so `moat config plan` can say changed or unchanged without seeing it.
 */

/**
 * Leaf keys whose values are secrets: by name (a PIN, a password, a secret, a key or token given by
 * value, such as sca.totp.encryptionKey — never a `…File` path), and the storage URLs (they may
 * carry a password).
 */
const SECRET_KEY = /(^|\.)(pin|password|passphrase|secret|key|token|[a-zA-Z]*(Secret|Password|Key|Token))$/;
const SECRET_KEYS = new Set(['storage.postgresUrl', 'storage.redisUrl']);

export function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key) || SECRET_KEY.test(key);
}

type Leaf = string | number | boolean | null;

/** Every leaf of the configuration by dotted key (`directories.0.issuer`); an empty list or map is a leaf. */
export function flattenConfig(value: unknown, prefix = ''): Record<string, Leaf | [] | Record<string, never>> {
  const out: Record<string, Leaf | [] | Record<string, never>> = {};
  const walk = (v: unknown, key: string) => {
    if (v === undefined) return;
    if (Array.isArray(v)) {
      if (v.length === 0) out[key] = [];
      v.forEach((item, i) => {
        walk(item, `${key}.${i}`);
      });
    } else if (typeof v === 'object' && v !== null) {
      const entries = Object.entries(v).filter(([, x]) => x !== undefined);
      if (entries.length === 0) out[key] = {};
      for (const [k, x] of entries) walk(x, key === '' ? k : `${key}.${k}`);
    } else {
      out[key] = v as Leaf;
    }
  };
  walk(value, prefix);
  return out;
}

/** A key as a description shows it: its value, or for a secret a digest salted per description. */
export type DescribedValue = { value: unknown } | { secret: true; digest: string };

export interface ConfigDescription {
  /** SHA-256 of the effective configuration, secrets counted as set, not by value. */
  hash: string;
  /** The salt of this description's secret digests. */
  salt: string;
  keys: Record<string, DescribedValue>;
}

function sortedEntries(flat: Record<string, unknown>): [string, unknown][] {
  return Object.entries(flat).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The configuration's hash: the same file and environment give the same hash on every instance. */
export function configHash(config: MoatConfig): string {
  const entries = sortedEntries(flattenConfig(config)).map(([k, v]) => [k, isSecretKey(k) ? '(secret set)' : v]);
  return createHash('sha256').update(JSON.stringify(entries)).digest('hex');
}

export function secretDigest(salt: string, value: unknown): string {
  return createHash('sha256').update(salt).update('\0').update(JSON.stringify(value)).digest('base64url');
}

export function describeConfig(config: MoatConfig, salt = randomBytes(16).toString('base64url')): ConfigDescription {
  const keys: Record<string, DescribedValue> = {};
  for (const [key, value] of sortedEntries(flattenConfig(config))) {
    keys[key] = isSecretKey(key) ? { secret: true, digest: secretDigest(salt, value) } : { value };
  }
  return { hash: configHash(config), salt, keys };
}

export interface ConfigChange {
  key: string;
  change: 'added' | 'removed' | 'changed';
  secret: boolean;
  /** The running value (absent for a secret, or an added key). */
  running?: unknown;
  /** The file's value (absent for a secret, or a removed key). */
  file?: unknown;
}

/** What applying `file` to the instance `running` describes would change, key by key. */
export function planConfig(file: MoatConfig, running: ConfigDescription): ConfigChange[] {
  const flat = flattenConfig(file);
  const changes: ConfigChange[] = [];
  const keys = [...new Set([...Object.keys(flat), ...Object.keys(running.keys)])].sort();
  for (const key of keys) {
    const inFile = Object.hasOwn(flat, key);
    const described = running.keys[key];
    const secret = isSecretKey(key) || (described !== undefined && 'secret' in described);
    if (!inFile) {
      changes.push({ key, change: 'removed', secret, ...(secret || described === undefined ? {} : { running: (described as { value: unknown }).value }) });
    } else if (described === undefined) {
      changes.push({ key, change: 'added', secret, ...(secret ? {} : { file: flat[key] }) });
    } else if ('secret' in described) {
      if (secretDigest(running.salt, flat[key]) !== described.digest) changes.push({ key, change: 'changed', secret: true });
    } else if (JSON.stringify(described.value) !== JSON.stringify(flat[key])) {
      changes.push({ key, change: 'changed', secret: false, running: described.value, file: flat[key] });
    }
  }
  return changes;
}

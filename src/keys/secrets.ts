import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/*
 * Symmetric secrets every instance of a deployment must share: the keys that sign cookies (the
 * outer Koa app's `keys`, which oidc-provider's cookies use when mounted) and the DPoP nonce
 * secret (RFC 9449 §8; oidc-provider derives nonces from it instead of storing them).
 */
export interface ServerSecrets {
  /** Newest first; older keys still verify cookies signed before a rotation. */
  cookieKeys: string[];
  /** 32 bytes, as oidc-provider requires. */
  dpopNonceSecret: Buffer;
}

export const SECRETS_FILE = 'secrets.json';

export function loadOrCreateSecrets(dir: string): ServerSecrets {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, SECRETS_FILE);
  if (!existsSync(file)) {
    const fresh = { cookieKeys: [randomBytes(32).toString('base64url')], dpopNonceSecret: randomBytes(32).toString('base64url') };
    // 'wx': of two instances starting at once on a shared volume, one writes and both read its file.
    try {
      writeFileSync(file, `${JSON.stringify(fresh, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const raw = JSON.parse(readFileSync(file, 'utf8')) as { cookieKeys?: unknown; dpopNonceSecret?: unknown };
  if (!Array.isArray(raw.cookieKeys) || raw.cookieKeys.length === 0 || !raw.cookieKeys.every((k) => typeof k === 'string' && k.length >= 32)) {
    throw new Error(`${file}: cookieKeys must be a non-empty array of secrets of at least 32 characters`);
  }
  const dpop = typeof raw.dpopNonceSecret === 'string' ? Buffer.from(raw.dpopNonceSecret, 'base64url') : Buffer.alloc(0);
  if (dpop.length !== 32) throw new Error(`${file}: dpopNonceSecret must be 32 bytes, base64url-encoded`);
  return { cookieKeys: raw.cookieKeys as string[], dpopNonceSecret: dpop };
}

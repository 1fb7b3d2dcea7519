import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/*
 * Factor secrets encrypted at rest with AES-256-GCM (NIST SP 800-38D) under a key the bank
 * configures, so a copy of the database alone cannot mint one-time codes. Each value gets a fresh
 * 96-bit IV; the customer id is bound in as additional authenticated data, so a secret copied onto
 * another customer's row does not decrypt.
 */

export interface SecretBox {
  seal(plaintext: string, boundTo: string): string;
  /** Throws SecretBoxUnreadable when the value was not sealed with this key for `boundTo`. */
  open(sealed: string, boundTo: string): string;
}

export class SecretBoxUnreadable extends Error {
  constructor() {
    super('a stored factor secret could not be decrypted with the configured key');
    this.name = 'SecretBoxUnreadable';
  }
}

const VERSION = 'v1';

/** The sandbox's generated key, in keys.dir. */
export const TOTP_KEY_FILE = 'totp-encryption.key';

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new TypeError('an AES-256-GCM key is 32 bytes');
  return {
    seal(plaintext, boundTo) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(boundTo, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return [VERSION, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
    },
    open(sealed, boundTo) {
      const [version, iv, body, tag] = sealed.split('.');
      if (version !== VERSION || iv === undefined || body === undefined || tag === undefined) throw new SecretBoxUnreadable();
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAAD(Buffer.from(boundTo, 'utf8'));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
      } catch {
        throw new SecretBoxUnreadable();
      }
    },
  };
}

/**
 * The key from `<configKey>.encryptionKey`, `<configKey>.encryptionKeyFile`, or (sandbox) a file
 * generated on first start. `configKey` names the configuration in errors: sca.totp unless given.
 */
export function loadEncryptionKey(options: { key?: string; keyFile?: string; generateAt?: string; configKey?: string }): Buffer {
  const configKey = options.configKey ?? 'sca.totp';
  if (options.key !== undefined) return Buffer.from(options.key, 'base64url');
  const file = options.keyFile ?? options.generateAt;
  if (file === undefined) throw new Error(`${configKey}.encryptionKey or ${configKey}.encryptionKeyFile is required`);
  if (options.keyFile === undefined && !existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    try {
      writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url');
  if (key.length !== 32) throw new Error(`${configKey}.encryptionKeyFile: ${file} must hold 32 bytes, base64url-encoded`);
  return key;
}

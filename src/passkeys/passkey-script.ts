import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/*
 * The one script Moat's customer pages run: @simplewebauthn/browser's bundle followed by Moat's own
 * glue (views/assets/passkey.js), served from Moat as one file. Pages load it with a per-response
 * CSP nonce and its SRI hash, so the CSP allows exactly this script and the browser refuses it if
 * a byte changed on the way (CSP Level 3 §6.7.3.2 nonces, SRI §3.3).
 */

export const PASSKEY_SCRIPT_PATH = '/assets/passkey.js';

export interface PasskeyScript {
  path: string;
  body: string;
  /** The SRI value for the script tag's integrity attribute. */
  integrity: string;
}

export function createPasskeyScript(viewsDir: string): PasskeyScript {
  // The package exports only its modules; its prebuilt browser bundle sits beside them.
  const entry = createRequire(import.meta.url).resolve('@simplewebauthn/browser');
  const bundle = readFileSync(join(dirname(dirname(entry)), 'dist', 'bundle', 'index.umd.min.js'), 'utf8');
  const body = `${bundle}\n${readFileSync(join(viewsDir, 'assets', 'passkey.js'), 'utf8')}`;
  return { path: PASSKEY_SCRIPT_PATH, body, integrity: `sha384-${createHash('sha384').update(body, 'utf8').digest('base64')}` };
}

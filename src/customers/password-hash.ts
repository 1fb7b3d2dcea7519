import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { ConcurrencyLimit } from '../throttle/concurrency-limit.ts';

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number, options: { N: number; r: number; p: number }) => Promise<Buffer>;

/**
 * scrypt at N=2^15, r=8, p=1: 32 MiB and 160–170 ms of one core per check here. OWASP's Password
 * Storage Cheat Sheet now asks for N=2^17, or an equal row such as N=2^15 with p=3; each hash
 * carries its parameters, so raising them leaves stored hashes valid (not done yet: it triples each
 * sign-in's CPU).
 */
const PARAMS: ScryptParameters = { N: 2 ** 15, r: 8, p: 1 };

export interface ScryptParameters {
  N: number;
  r: number;
  p: number;
}

/**
 * For passwords that are public, and only those: the sandbox's demo customers, whose passwords the
 * README, the sign-in page and `moat start` print. A costly hash protects nothing there, and cost
 * every sandbox sign-in 160–170 ms of a core (1 MiB and ~5 ms at these).
 */
export const PUBLIC_PASSWORD_PARAMS: ScryptParameters = { N: 2 ** 10, r: 8, p: 1 };
const KEY_LENGTH = 32;
const MAX_MEMORY = 64 * 1024 * 1024;

/**
 * One scrypt per core at a time. Each holds 128·N·r bytes (32 MiB here) while it runs, and is pure
 * CPU: libuv's four pool threads would run four at once on a two-core machine for no more
 * throughput, 128 MiB of RSS during a burst of sign-ins (issue 20), and the pool's other work (file
 * reads, WebCrypto) queued behind them. On four cores or more the pool's own four threads are the
 * tighter bound. One for the process, not one per caller: the pool and the cores it guards are
 * the process's.
 */
export const passwordHashing = new ConcurrencyLimit(availableParallelism());

/**
 * What an unknown username's sign-in is checked against, so that it takes as long as a known one's
 * (the same parameters, a digest of the same length) and the timing does not tell them apart. Its
 * digest is zeros, which no password is known to hash to; and a match would still find no customer.
 * A constant rather than the hash of a random password: that cost a scrypt at every start.
 */
export const DECOY_HASH = ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, Buffer.alloc(16).toString('base64url'), Buffer.alloc(KEY_LENGTH).toString('base64url')].join(
  '$',
);

/** `scrypt$N$r$p$salt$hash`, salt and hash base64url. */
export async function hashPassword(password: string, params: ScryptParameters = PARAMS): Promise<string> {
  const salt = randomBytes(16);
  const hash = await passwordHashing.run(() => scryptAsync(password, salt, KEY_LENGTH, { ...params, maxmem: MAX_MEMORY } as ScryptParameters));
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = encoded.split('$');
  if (scheme !== 'scrypt' || salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64url');
  const options = { N: Number(n), r: Number(r), p: Number(p), maxmem: MAX_MEMORY } as ScryptParameters;
  const actual = await passwordHashing.run(() => scryptAsync(password, Buffer.from(salt, 'base64url'), expected.length, options));
  return timingSafeEqual(expected, actual);
}

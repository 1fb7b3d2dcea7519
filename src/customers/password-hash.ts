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
/**
 * The most one check may hold: 128·N·r bytes. Room for OWASP's N = 2^17 with r = 8 (128 MiB), which
 * a bank may bring with its customers' hashes; a stored hash asking for more is unreadable.
 */
const MAX_MEMORY = 256 * 1024 * 1024;
/** The shortest salt and digest a stored hash may have: a digest of 0 bytes matched every password. */
const MIN_SALT_BYTES = 8;
const MIN_DIGEST_BYTES = 16;

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

/**
 * Whether `password` is the one `encoded` was made from. A stored hash this module could not have
 * written (another scheme, parameters out of range, a salt or digest cut short) matches no password,
 * and is checked for as long as a readable one, against the decoy.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const stored = readHash(encoded);
  const { params, salt, digest } = stored ?? DECOY;
  const options = { ...params, maxmem: MAX_MEMORY } as ScryptParameters;
  const actual = await passwordHashing.run(() => scryptAsync(password, salt, digest.length, options));
  return stored !== undefined && timingSafeEqual(digest, actual);
}

interface StoredHash {
  params: ScryptParameters;
  salt: Buffer;
  digest: Buffer;
}

/** `scrypt$N$r$p$salt$hash` read strictly, or undefined: N a power of two, r and p small positive integers, within MAX_MEMORY. */
function readHash(encoded: string): StoredHash | undefined {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map((part) => (/^[1-9]\d{0,9}$/.test(part) ? Number(part) : Number.NaN)) as [number, number, number];
  if (!(N >= 2 && Number.isInteger(Math.log2(N)) && r >= 1 && r <= 64 && p >= 1 && p <= 16)) return undefined;
  if (128 * N * r > MAX_MEMORY) return undefined;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const digest = Buffer.from(parts[5]!, 'base64url');
  if (salt.length < MIN_SALT_BYTES || digest.length < MIN_DIGEST_BYTES || digest.length > 64) return undefined;
  return { params: { N, r, p }, salt, digest };
}

const DECOY: StoredHash = readHash(DECOY_HASH)!;

/**
 * Whether a stored hash costs less than one made now (less memory, or less work): such a hash is
 * made again at the current parameters at the customer's next sign-in, when the password is known
 * (a bank's imported hashes, or ones made before the parameters were raised). An unreadable one is
 * not: it matches no password, so no sign-in reaches the point of making it again.
 */
export function isBelowCurrentCost(encoded: string): boolean {
  const stored = readHash(encoded);
  if (stored === undefined) return false;
  const { N, r, p } = stored.params;
  return N * r < PARAMS.N * PARAMS.r || N * r * p < PARAMS.N * PARAMS.r * PARAMS.p;
}

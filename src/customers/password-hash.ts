import { argon2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { ConcurrencyLimit } from '../throttle/concurrency-limit.ts';

/*
 * Customers' passwords: Argon2id (RFC 9106) in the PHC string format that libargon2, Keycloak's and
 * most other stacks write, so a bank can bring its customers' hashes as they are. scrypt hashes in
 * Moat's earlier format are still read, and made again as Argon2id at the customer's next sign-in.
 */

/** Argon2's cost: memory in KiB, passes over it, lanes. */
export interface Argon2Parameters {
  memoryKiB: number;
  passes: number;
  parallelism: number;
}

/**
 * OWASP's Password Storage Cheat Sheet's first choice: Argon2id with 19 MiB, 2 passes, 1 lane.
 * Against the scrypt (N = 2^15, r = 8) it replaces: 19 MiB held per check instead of 32 (issue 20:
 * the soak's peak RSS was the samples that caught two checks at once), and about a quarter of the
 * CPU (45–50 ms of one core here against 160–170 ms), at OWASP's minimum where the scrypt was below it.
 */
const PARAMS: Argon2Parameters = { memoryKiB: 19 * 1024, passes: 2, parallelism: 1 };

/**
 * For passwords that are public, and only those: the sandbox's demo customers, whose passwords the
 * README, the sign-in page and `moat start` print. A costly hash protects nothing there (1 MiB and
 * 1–2 ms at these).
 */
export const PUBLIC_PASSWORD_PARAMS: Argon2Parameters = { memoryKiB: 1024, passes: 1, parallelism: 1 };

const KEY_LENGTH = 32;
/**
 * The most one check may hold: Argon2's m KiB, scrypt's 128·N·r bytes. Room for scrypt at OWASP's
 * N = 2^17 with r = 8 (128 MiB), which a bank may bring; a stored hash asking for more is unreadable.
 */
const MAX_MEMORY = 256 * 1024 * 1024;
/** The most passes an Argon2 hash may ask for: OWASP's rows go to 5; a stored hash asking for more is unreadable. */
const MAX_PASSES = 16;
/** The shortest salt and digest a stored hash may have: a digest of 0 bytes matched every password. */
const MIN_SALT_BYTES = 8;
const MIN_DIGEST_BYTES = 16;
const MAX_DIGEST_BYTES = 64;
/** The only Argon2 version Node's implementation computes (RFC 9106 §3.1: 0x13). */
const ARGON2_VERSION = 19;

/**
 * One check per core at a time. Each holds its memory (19 MiB at Moat's parameters) while it runs,
 * and is pure CPU: libuv's four pool threads would run four at once on a two-core machine for no
 * more throughput, more RSS during a burst of sign-ins (issue 20), and the pool's other work (file
 * reads, WebCrypto) queued behind them. On four cores or more the pool's own four threads are the
 * tighter bound. One for the process, not one per caller: the pool and the cores it guards are
 * the process's.
 */
export const passwordHashing = new ConcurrencyLimit(availableParallelism());

type Argon2Variant = 'argon2id' | 'argon2i';

/** How a digest is made: the scheme, its parameters and the salt. */
type Derivation = { scheme: Argon2Variant; params: Argon2Parameters; salt: Buffer } | { scheme: 'scrypt'; params: ScryptParameters; salt: Buffer };

type StoredHash = Derivation & { digest: Buffer };

interface ScryptParameters {
  N: number;
  r: number;
  p: number;
}

const argon2Async = promisify(argon2);
const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number, options: ScryptParameters & { maxmem: number }) => Promise<Buffer>;

/** PHC's base64: the standard alphabet, no padding. */
const toB64 = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');

function phcString(params: Argon2Parameters, salt: Buffer, digest: Buffer): string {
  return `$argon2id$v=${ARGON2_VERSION}$m=${params.memoryKiB},t=${params.passes},p=${params.parallelism}$${toB64(salt)}$${toB64(digest)}`;
}

/**
 * What an unknown username's sign-in is checked against, so that it takes as long as a known one's
 * (the same parameters, a digest of the same length) and the timing does not tell them apart. Its
 * digest is zeros, which no password is known to hash to; and a match would still find no customer.
 * A constant rather than the hash of a random password: that cost a hash at every start.
 */
export const DECOY_HASH = phcString(PARAMS, Buffer.alloc(16), Buffer.alloc(KEY_LENGTH));

/** The same for the scrypt hashes Moat made before Argon2id (N = 2^15, r = 8, p = 1). */
export const LEGACY_DECOY_HASH = ['scrypt', 2 ** 15, 8, 1, Buffer.alloc(16).toString('base64url'), Buffer.alloc(KEY_LENGTH).toString('base64url')].join('$');

/**
 * While customers still hold scrypt hashes (each made again as Argon2id at its next sign-in), a
 * failed check costs what the stored hash costs: 160–170 ms for scrypt, 45–50 ms for Argon2id and
 * the decoy. That would tell a dormant customer's username from an unknown one. So every failed
 * check also runs the other scheme's decoy: one scrypt and one Argon2id per failure, whoever the
 * username names. `stored` is the hash just checked (undefined: the username is unknown).
 */
export function decoyBesideFailedCheck(stored: string | undefined): string {
  return stored !== undefined && readHash(stored)?.scheme === 'scrypt' ? DECOY_HASH : LEGACY_DECOY_HASH;
}

/** `$argon2id$v=19$m=…,t=…,p=…$salt$digest` (PHC string format). */
export async function hashPassword(password: string, params: Argon2Parameters = PARAMS): Promise<string> {
  const salt = randomBytes(16);
  const digest = await derive(password, { scheme: 'argon2id', params, salt }, KEY_LENGTH);
  return phcString(params, salt, digest);
}

/**
 * Whether `password` is the one `encoded` was made from. A stored hash this module could not have
 * made (another scheme, parameters out of range, a salt or digest cut short) matches no password,
 * and is checked for as long as a readable one, against the decoy.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const stored = readHash(encoded);
  const checked = stored ?? DECOY;
  const actual = await derive(password, checked, checked.digest.length);
  return stored !== undefined && timingSafeEqual(checked.digest, actual);
}

/** `length` bytes of digest of `password`, made as `how` says. */
function derive(password: string, how: Derivation, length: number): Promise<Buffer> {
  return passwordHashing.run(() => {
    if (how.scheme === 'scrypt') return scryptAsync(password, how.salt, length, { ...how.params, maxmem: MAX_MEMORY });
    const { memoryKiB, passes, parallelism } = how.params;
    return argon2Async(how.scheme, { message: password, nonce: how.salt, memory: memoryKiB, passes, parallelism, tagLength: length });
  });
}

/** A stored hash read strictly, or undefined: the PHC Argon2 string, or Moat's earlier scrypt one. */
function readHash(encoded: string): StoredHash | undefined {
  return encoded.startsWith('$argon2') ? readArgon2(encoded) : readScrypt(encoded);
}

/** A whole decimal number without a sign, a leading zero or an exponent; NaN otherwise. */
const whole = (text: string | undefined) => (text !== undefined && /^[1-9]\d{0,9}$/.test(text) ? Number(text) : Number.NaN);

/**
 * `$argon2id$v=19$m=M,t=T,p=P$salt$digest` (and `$argon2i$…`): version 19, m from 8·p KiB to
 * MAX_MEMORY, t up to MAX_PASSES, p up to 16; salt and digest in PHC's unpadded base64. Argon2d is
 * not read: it is not meant for passwords (RFC 9106 §4).
 */
function readArgon2(encoded: string): StoredHash | undefined {
  const match = /^\$(argon2id|argon2i)\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(encoded);
  if (match === null) return undefined;
  const [, scheme, version, m, t, p, salt, digest] = match as unknown as [string, Argon2Variant, string, string, string, string, string, string];
  const params = { memoryKiB: whole(m), passes: whole(t), parallelism: whole(p) };
  if (whole(version) !== ARGON2_VERSION) return undefined;
  if (!(params.parallelism >= 1 && params.parallelism <= 16 && params.passes >= 1 && params.passes <= MAX_PASSES)) return undefined;
  if (!(params.memoryKiB >= 8 * params.parallelism && params.memoryKiB * 1024 <= MAX_MEMORY)) return undefined;
  const bytes = saltAndDigest(Buffer.from(salt, 'base64'), Buffer.from(digest, 'base64'));
  return bytes && { scheme, params, ...bytes };
}

/** `scrypt$N$r$p$salt$digest`, salt and digest base64url: N a power of two, r ≤ 64, p ≤ 16, 128·N·r within MAX_MEMORY. */
function readScrypt(encoded: string): StoredHash | undefined {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map(whole) as [number, number, number];
  if (!(N >= 2 && Number.isInteger(Math.log2(N)) && r >= 1 && r <= 64 && p >= 1 && p <= 16)) return undefined;
  if (128 * N * r > MAX_MEMORY) return undefined;
  const bytes = saltAndDigest(Buffer.from(parts[4]!, 'base64url'), Buffer.from(parts[5]!, 'base64url'));
  return bytes && { scheme: 'scrypt', params: { N, r, p }, ...bytes };
}

function saltAndDigest(salt: Buffer, digest: Buffer): { salt: Buffer; digest: Buffer } | undefined {
  if (salt.length < MIN_SALT_BYTES || digest.length < MIN_DIGEST_BYTES || digest.length > MAX_DIGEST_BYTES) return undefined;
  return { salt, digest };
}

const DECOY: StoredHash = readHash(DECOY_HASH)!;

/**
 * Whether a stored hash is to be made again at Moat's scheme and parameters at the customer's next
 * sign-in, when the password is known: any scrypt or Argon2i hash, and an Argon2id one with less
 * memory or less work (memory × passes) than Moat's own (a bank's imported hashes, or ones made
 * before the parameters were raised). An unreadable one is not: it matches no password, so no
 * sign-in reaches the point of making it again.
 */
export function needsRehash(encoded: string): boolean {
  const stored = readHash(encoded);
  if (stored === undefined) return false;
  if (stored.scheme !== 'argon2id') return true;
  const { memoryKiB, passes } = stored.params;
  return memoryKiB < PARAMS.memoryKiB || memoryKiB * passes < PARAMS.memoryKiB * PARAMS.passes;
}

import type { SigningAlgorithm } from '../config/schema.ts';

/*
 * The lifecycle every signing key follows, wherever it lives (a JWKS file, a PKCS#11 token): one
 * active key per algorithm signs; rotation retires it — still published for verification until
 * every token it signed has expired — and activates the staged `next` key or a new one.
 */

/** Lifecycle of a key: `next` is published ahead of use, `active` signs, `retired` only verifies. */
export type KeyState = 'next' | 'active' | 'retired';

export const KEY_STATES: readonly KeyState[] = ['next', 'active', 'retired'];

/** What the lifecycle needs to know of a key (the file's JWK members name the fields). */
export interface LifecycleKey {
  kid: string;
  alg: SigningAlgorithm;
  moat_state: KeyState;
  /** Epoch seconds. */
  moat_created_at: number;
  moat_retired_at?: number;
}

export interface RotationResult<K extends LifecycleKey> {
  activated: K[];
  retired: K[];
  staged: K[];
  pruned: K[];
}

export interface RotationOptions {
  /** How long a retired key stays published: the longest lifetime of what it signed. */
  retainSeconds: number;
  /** Also publish a new `next` key, to be activated by the following rotation. */
  stage?: boolean;
  now?: number;
}

/**
 * Rotates `keys` in place for each algorithm and returns what changed and the keys to keep;
 * `generate` makes a new key in the given state (and stores it, where storing is per key).
 */
export async function rotateKeys<K extends LifecycleKey>(
  keys: K[],
  algorithms: readonly SigningAlgorithm[],
  options: RotationOptions,
  generate: (alg: SigningAlgorithm, state: KeyState) => Promise<K>,
): Promise<{ result: RotationResult<K>; kept: K[] }> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const result: RotationResult<K> = { activated: [], retired: [], staged: [], pruned: [] };
  for (const alg of algorithms) {
    const active = keys.find((k) => k.alg === alg && k.moat_state === 'active');
    if (active !== undefined) {
      active.moat_state = 'retired';
      active.moat_retired_at = now;
      result.retired.push(active);
    }
    let next = keys.find((k) => k.alg === alg && k.moat_state === 'next');
    if (next === undefined) {
      next = await generate(alg, 'active');
      keys.push(next);
    }
    next.moat_state = 'active';
    result.activated.push(next);
    if (options.stage === true) {
      const staged = await generate(alg, 'next');
      keys.push(staged);
      result.staged.push(staged);
    }
  }
  const kept = keys.filter((k) => {
    const expired = isExpired(k, options.retainSeconds, now);
    if (expired) result.pruned.push(k);
    return !expired;
  });
  return { result, kept };
}

/** A retired key whose tokens have all expired: no verifier needs it any more. */
export function isExpired(key: LifecycleKey, retainSeconds: number, now: number): boolean {
  return key.moat_state === 'retired' && (key.moat_retired_at ?? 0) + retainSeconds <= now;
}

/** Algorithms of `algorithms` that have no active key. */
export function algorithmsWithoutActiveKey(keys: readonly LifecycleKey[], algorithms: readonly SigningAlgorithm[]): SigningAlgorithm[] {
  return algorithms.filter((alg) => !keys.some((k) => k.alg === alg && k.moat_state === 'active'));
}

/** Problems with a key set: duplicate kids, unknown states, two active keys for one algorithm. */
export function keySetProblems(keys: readonly LifecycleKey[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const k of keys) {
    // FAPI 2.0 SP §5.4: no duplicate kids, or verifiers cannot tell keys apart.
    if (seen.has(k.kid)) problems.push(`duplicate kid "${k.kid}"`);
    seen.add(k.kid);
    if (!KEY_STATES.includes(k.moat_state)) problems.push(`key ${k.kid} has an unknown moat_state`);
  }
  const active = keys.filter((k) => k.moat_state === 'active').map((k) => k.alg);
  if (new Set(active).size !== active.length) problems.push('more than one active key for one algorithm');
  return problems;
}

/** One line of `moat keys list`. */
export function describeKey(k: LifecycleKey): string {
  const retired = k.moat_retired_at === undefined ? '' : ` retired ${new Date(k.moat_retired_at * 1000).toISOString()}`;
  return `${k.kid}  ${k.alg.padEnd(6)} ${k.moat_state.padEnd(8)} created ${new Date(k.moat_created_at * 1000).toISOString()}${retired}`;
}

/** A lifecycle step an operator asked for that cannot be taken, said in their terms. */
export class KeyLifecycleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyLifecycleError';
  }
}

function findKey<K extends LifecycleKey>(keys: readonly K[], kid: string): K {
  const key = keys.find((k) => k.kid === kid);
  if (key === undefined) throw new KeyLifecycleError(`no signing key with kid ${kid} (moat keys list shows them)`);
  return key;
}

/**
 * Makes `kid` the active key of its algorithm; the key active until now is retired, still published
 * for verification. Activate a key only once every instance publishes it (it was `next` through a
 * restart of each), or a verifier holding the old JWKS meets a kid it does not know. Returns the
 * keys whose state changed, the retired one first.
 */
export function activateKey<K extends LifecycleKey>(keys: K[], kid: string, now: number): K[] {
  const key = findKey(keys, kid);
  if (key.moat_state === 'active') return [];
  const changed: K[] = [];
  const current = keys.find((k) => k.alg === key.alg && k.moat_state === 'active');
  if (current !== undefined) {
    current.moat_state = 'retired';
    current.moat_retired_at = now;
    changed.push(current);
  }
  key.moat_state = 'active';
  delete key.moat_retired_at;
  changed.push(key);
  return changed;
}

/**
 * Retires a `next` key (it stays published until pruned). The active key is not retired alone — an
 * algorithm would be left with nothing to sign — but by activating its successor.
 */
export function retireKey<K extends LifecycleKey>(keys: K[], kid: string, now: number): K[] {
  const key = findKey(keys, kid);
  if (key.moat_state === 'retired') return [];
  if (key.moat_state === 'active') {
    throw new KeyLifecycleError(
      `${kid} is the active ${key.alg} key: generate its successor and activate that (moat keys generate, moat keys activate KID) instead`,
    );
  }
  key.moat_state = 'retired';
  key.moat_retired_at = now;
  return [key];
}

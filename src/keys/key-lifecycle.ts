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

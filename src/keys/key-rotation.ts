import type { JWK } from 'jose';
import type { MoatConfig, SigningAlgorithm } from '../config/schema.ts';
import { isExpired, type KeyState, type LifecycleKey } from './key-lifecycle.ts';

/*
 * The rotation schedule of keys every instance shares (keys.source: database), as pure decisions:
 * given the keys and the time, which transitions are due. Whichever instance finds them due applies
 * them (under a lock, storage/sql/signing-key-store.ts); every instance then loads the result.
 *
 *   active ──(every − publishAhead)──▶ next staged, published, verify only
 *   next   ──(publishAhead later)────▶ active; the old active key retired, still published
 *   retired ─(retain later)──────────▶ removed
 *
 * publishAhead is at least the longest a client may cache the JWKS plus the time every instance
 * takes to pick a change up, so no verifier meets a kid it was not offered before it signs.
 */

/** A key as the shared store keeps it (epoch seconds, as LifecycleKey). */
export interface SharedKey extends LifecycleKey {
  /** The public JWK (kid, alg, use included), as published. */
  publicJwk: JWK;
  /** The private JWK, sealed with the key-encryption key, the kid bound in; empty for a key in an HSM. */
  sealedPrivateJwk: string;
  /** A `next` key: when it becomes active. */
  moat_activate_at?: number;
  moat_activated_at?: number;
}

/** One change to the shared keys; a plan lists them in the order they are applied. */
export type KeyTransition =
  | { kind: 'generated' | 'staged'; key: SharedKey }
  /** A key that existed before the store kept it (a token's keys, the first time they are coordinated), in its state. */
  | { kind: 'adopted'; key: SharedKey }
  | { kind: 'scheduled'; kid: string; alg: SigningAlgorithm; activateAt: number }
  | { kind: 'activated' | 'retired'; kid: string; alg: SigningAlgorithm; at: number }
  | { kind: 'removed'; kid: string; alg: SigningAlgorithm };

export interface RotationPolicy {
  algorithms: readonly SigningAlgorithm[];
  /** Seconds a key signs before its successor takes over; undefined: only `moat keys rotate` rotates. */
  every?: number | undefined;
  /** Seconds a key is published before it signs. */
  publishAhead: number;
  /** Seconds a retired key stays published: the longest lifetime of anything it signed. */
  retain: number;
}

/**
 * How long a retired key stays published: the longest lifetime of anything it may have signed
 * (ID tokens, JWT access tokens, JARM responses, signed introspection responses), plus clock skew.
 */
export function retainSeconds(config: MoatConfig): number {
  const lifetimes = [
    config.tokens.idTokenTtl,
    config.tokens.accessTokenTtl,
    config.tokens.clientCredentialsTtl,
    ...config.resourceServers.map((rs) => rs.accessTokenTtl ?? 0),
  ];
  return Math.max(...lifetimes) + 60;
}

/** The policy `keys` configures: publishAhead is the JWKS cache plus one check interval, for every instance to pick the key up. */
export function rotationPolicy(config: MoatConfig): RotationPolicy {
  const { rotation } = config.keys;
  return {
    algorithms: config.keys.algorithms,
    every: rotation.every,
    publishAhead: rotation.jwksCacheSeconds + rotation.checkIntervalSeconds,
    retain: retainSeconds(config),
  };
}

/**
 * Whether the keys' lifecycle lives in the database every instance reads, rotated there without
 * restarts: the database's own keys, and the HSM's once keys.rotation.every schedules them (the
 * private keys stay in the token; the rows hold their states). An HSM without a schedule keeps its
 * states in the token's labels, rotated by hand with a roll of the instances.
 */
export function lifecycleInDatabase(config: MoatConfig): boolean {
  return config.keys.source === 'database' || (config.keys.source === 'pkcs11' && config.keys.rotation.every !== undefined);
}

/** Makes a new key of `alg` in `state` (generated and sealed, not stored). */
export type MintKey = (alg: SigningAlgorithm, state: KeyState, now: number, activateAt?: number) => Promise<SharedKey>;

function keysOf(keys: readonly SharedKey[], alg: SigningAlgorithm) {
  return {
    active: keys.find((k) => k.alg === alg && k.moat_state === 'active'),
    next: keys.find((k) => k.alg === alg && k.moat_state === 'next'),
  };
}

/** Retired keys whose tokens have all expired: no verifier needs them any more. */
function removals(keys: readonly SharedKey[], retain: number, now: number): KeyTransition[] {
  return keys.filter((k) => isExpired(k, retain, now)).map((k) => ({ kind: 'removed', kid: k.kid, alg: k.alg }));
}

/**
 * The transitions due at `now`: an active key for an algorithm that has none (the first start),
 * a staged successor once the active key nears the end of its period, the successor activated once
 * it has been published for publishAhead and is due, expired retired keys removed.
 */
export async function dueTransitions(keys: readonly SharedKey[], policy: RotationPolicy, now: number, mint: MintKey): Promise<KeyTransition[]> {
  const plan: KeyTransition[] = [];
  for (const alg of policy.algorithms) {
    const { active, next } = keysOf(keys, alg);
    if (active === undefined) {
      // Nothing signs for this algorithm, so nothing can be verified with a stale JWKS either.
      plan.push(next === undefined ? { kind: 'generated', key: await mint(alg, 'active', now) } : { kind: 'activated', kid: next.kid, alg, at: now });
      continue;
    }
    if (next === undefined) {
      if (policy.every === undefined) continue;
      const due = (active.moat_activated_at ?? active.moat_created_at) + policy.every;
      if (now >= due - policy.publishAhead) plan.push({ kind: 'staged', key: await mint(alg, 'next', now, Math.max(due, now + policy.publishAhead)) });
      continue;
    }
    if (next.moat_activate_at !== undefined && now >= next.moat_activate_at && now >= next.moat_created_at + policy.publishAhead) {
      // Retired first: the database holds one active key per algorithm at every moment.
      plan.push({ kind: 'retired', kid: active.kid, alg, at: now }, { kind: 'activated', kid: next.kid, alg, at: now });
    }
  }
  return [...plan, ...removals(keys, policy.retain, now)];
}

/**
 * `moat keys rotate`: the same rotation, now rather than when the period ends. The staged successor
 * (or a new one) is activated as soon as it has been published for publishAhead. `immediately` (a
 * compromised key) activates it at once: verifiers holding a cached JWKS must fetch it again.
 */
export async function rotationOnDemand(
  keys: readonly SharedKey[],
  policy: RotationPolicy,
  now: number,
  mint: MintKey,
  immediately: boolean,
): Promise<KeyTransition[]> {
  const plan: KeyTransition[] = [];
  for (const alg of policy.algorithms) {
    const { active, next } = keysOf(keys, alg);
    if (immediately) {
      if (active !== undefined) plan.push({ kind: 'retired', kid: active.kid, alg, at: now });
      plan.push(next === undefined ? { kind: 'generated', key: await mint(alg, 'active', now) } : { kind: 'activated', kid: next.kid, alg, at: now });
    } else if (next === undefined) {
      plan.push({ kind: 'staged', key: await mint(alg, 'next', now, now + policy.publishAhead) });
    } else {
      const activateAt = Math.max(next.moat_created_at + policy.publishAhead, now);
      if (next.moat_activate_at === undefined || activateAt < next.moat_activate_at) plan.push({ kind: 'scheduled', kid: next.kid, alg, activateAt });
    }
  }
  return [...plan, ...removals(keys, policy.retain, now)];
}

import { join } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { Counter, Gauge, Registry } from 'prom-client';
import type { MoatConfig } from '../config/schema.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import type { Logger } from '../observability/logger.ts';
import { createSecretBox, loadEncryptionKey, type SecretBox } from '../sca/secret-box.ts';
import { keySetProblems, type KeyState } from './key-lifecycle.ts';
import { dueTransitions, rotationOnDemand, type KeyTransition, type MintKey, type RotationPolicy, type SharedKey } from './key-rotation.ts';
import { generateSigningKey, providerJwks, type StoredKey } from './signing-keys.ts';

/*
 * Signing keys every instance reads from one database (keys.source: database). Each instance
 * applies the transitions that are due (key-rotation.ts), hears of changes made elsewhere
 * (LISTEN/NOTIFY) and re-reads the keys every checkIntervalSeconds besides, and hands the key set to
 * oidc-provider whole: what an instance signs with is always in what it publishes. Each transition
 * is audited once, by the process that made it.
 */

/** What the shared keys need of storage; storage/sql implements it over Postgres and PGlite. */
export interface SigningKeyStore {
  list(): Promise<SharedKey[]>;
  /**
   * Reads the keys under a lock every instance takes, applies the transitions `plan` returns in one
   * transaction, and tells every instance when there were any. Resolves once they are committed.
   */
  change(plan: (keys: SharedKey[]) => Promise<KeyTransition[]>): Promise<KeyTransition[]>;
}

/** Announcements that the keys changed somewhere (the invalidation bus's `signing-keys` topic). */
export interface KeyChangeAnnouncements {
  /** Calls `onChange` for each announcement, and when announcements may have been missed; returns a function that stops. */
  subscribe(onChange: () => void): () => void;
}

/** A stored key that cannot be used: its row is corrupt, or sealed under another key-encryption key. */
export class UnusableSigningKeyError extends Error {
  constructor(kid: string, why: string, options?: ErrorOptions) {
    super(`signing key ${kid} in the database cannot be used: ${why}`, options);
    this.name = 'UnusableSigningKeyError';
  }
}

/** The sandbox's generated key-encryption key, in keys.dir. */
export const SIGNING_KEY_ENCRYPTION_FILE = 'signing-key-encryption.key';

/** The box private keys are sealed in: keys.encryptionKey or keys.encryptionKeyFile; in the sandbox, generated under keys.dir. */
export function signingKeyBox(config: MoatConfig): SecretBox {
  const { encryptionKey, encryptionKeyFile, dir } = config.keys;
  return createSecretBox(
    loadEncryptionKey({
      configKey: 'keys',
      ...(encryptionKey === undefined ? {} : { key: encryptionKey }),
      ...(encryptionKeyFile === undefined ? {} : { keyFile: encryptionKeyFile }),
      ...(config.mode === 'sandbox' ? { generateAt: join(dir, SIGNING_KEY_ENCRYPTION_FILE) } : {}),
    }),
  );
}

/** Seals new keys with `box`: the private JWK encrypted, the kid bound in. */
export function sealingMint(box: SecretBox): MintKey {
  return async (alg, state, now, activateAt) => {
    const { moat_state: _s, moat_created_at: _c, ...privateJwk } = await generateSigningKey(alg, state, now);
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = privateJwk;
    return {
      kid: privateJwk.kid!,
      alg,
      moat_state: state,
      moat_created_at: now,
      ...(activateAt === undefined ? {} : { moat_activate_at: activateAt }),
      ...(state === 'active' ? { moat_activated_at: now } : {}),
      publicJwk,
      sealedPrivateJwk: box.seal(JSON.stringify(privateJwk), privateJwk.kid!),
    };
  };
}

/**
 * Where the private keys of the shared keys are: sealed in their rows (keys.source database) or in
 * the bank's HSM (pkcs11, provider/external-signing-keys.ts). The schedule, the lock, the
 * announcements and the audit are the same for both; only making a key, handing the keys to
 * oidc-provider and destroying a removed key differ.
 */
export interface KeyMaterial {
  mint: MintKey;
  /** The key set as oidc-provider takes it: active keys sign, next and retired keys verify only. */
  providerJwks(keys: readonly SharedKey[]): Promise<{ keys: object[] }>;
  /** Keys that exist already when the store has none (the token's, the first time it is coordinated), to keep in their states. */
  existing?(): Promise<SharedKey[]>;
  /** Called once a removal is committed, by the process that made it (the token's key is destroyed). */
  removed?(kid: string): Promise<void>;
}

/** The database's own keys: sealed with `box` in their rows. */
export function sealedKeyMaterial(box: SecretBox): KeyMaterial {
  return {
    mint: sealingMint(box),
    providerJwks: async (keys) => providerJwks(await Promise.all(keys.map((k) => openKey(k, box)))),
  };
}

/** Opens a stored key into the form the file source keeps (signing-keys.ts), checking it is the key its kid names. */
async function openKey(key: SharedKey, box: SecretBox): Promise<StoredKey> {
  let jwk: JWK;
  try {
    jwk = JSON.parse(box.open(key.sealedPrivateJwk, key.kid)) as JWK;
  } catch (err) {
    throw new UnusableSigningKeyError(key.kid, 'its private key does not decrypt with keys.encryptionKey', { cause: err });
  }
  // The kid is the RFC 7638 thumbprint: a row whose key was swapped does not match it.
  if ((await calculateJwkThumbprint(jwk).catch(() => undefined)) !== key.kid)
    throw new UnusableSigningKeyError(key.kid, 'its private key is not the key its kid names');
  return { ...jwk, kid: key.kid, alg: key.alg, use: 'sig', moat_state: key.moat_state, moat_created_at: key.moat_created_at };
}

const AUDIT_TYPES = {
  adopted: 'key.adopted',
  generated: 'key.generated',
  staged: 'key.staged',
  scheduled: 'key.scheduled',
  activated: 'key.activated',
  retired: 'key.retired',
  removed: 'key.removed',
} as const;

function describe(t: KeyTransition): { kid: string; alg: string; detail: Record<string, unknown> } {
  switch (t.kind) {
    case 'generated':
    case 'staged':
    case 'adopted':
      return {
        kid: t.key.kid,
        alg: t.key.alg,
        detail: t.key.moat_activate_at === undefined ? {} : { activateAt: new Date(t.key.moat_activate_at * 1000).toISOString() },
      };
    case 'scheduled':
      return { kid: t.kid, alg: t.alg, detail: { activateAt: new Date(t.activateAt * 1000).toISOString() } };
    default:
      return { kid: t.kid, alg: t.alg, detail: {} };
  }
}

/** Records each committed transition in the audit log and the log. */
export async function auditTransitions(
  transitions: readonly KeyTransition[],
  deps: { audit: AuditLog; logger: Logger; actor: 'system' | 'operator' },
): Promise<void> {
  for (const t of transitions) {
    const { kid, alg, detail } = describe(t);
    deps.logger.info({ event: `keys.${t.kind}`, kid, alg, ...detail }, `signing key ${t.kind}`);
    await deps.audit.record({ type: AUDIT_TYPES[t.kind], actor: deps.actor, subject: kid, detail: { alg, ...detail } });
  }
}

/** After a committed change: each removed key's material destroyed (a failure is logged, the key left where it is). */
async function afterCommit(made: readonly KeyTransition[], material: KeyMaterial, logger: Logger): Promise<void> {
  if (material.removed === undefined) return;
  for (const t of made) {
    if (t.kind !== 'removed') continue;
    try {
      await material.removed(t.kid);
    } catch (err) {
      logger.error(
        { event: 'keys.destroy_failed', kid: t.kid, alg: t.alg, err },
        'a removed signing key could not be destroyed; it is no longer published or used, destroy it by hand',
      );
    }
  }
}

/**
 * The first transitions on an empty store whose material has keys already: those keys adopted in
 * their states. A `next` key among them (staged by hand) is scheduled as the schedule would have
 * staged it: to sign when its algorithm's active key's period ends, and not before every instance
 * has published it for publishAhead.
 */
async function adoption(
  keys: readonly SharedKey[],
  material: KeyMaterial,
  policy: RotationPolicy,
  now: number,
): Promise<{ kind: 'adopted'; key: SharedKey }[]> {
  if (keys.length > 0 || material.existing === undefined) return [];
  const existing = await material.existing();
  return existing.map((key) => {
    if (key.moat_state !== 'next' || key.moat_activate_at !== undefined) return { kind: 'adopted' as const, key };
    const active = existing.find((k) => k.alg === key.alg && k.moat_state === 'active');
    const due = active === undefined || policy.every === undefined ? now : (active.moat_activated_at ?? active.moat_created_at) + policy.every;
    return { kind: 'adopted' as const, key: { ...key, moat_activate_at: Math.max(due, now + policy.publishAhead) } };
  });
}

export interface SharedSigningKeysOptions {
  store: SigningKeyStore;
  announcements: KeyChangeAnnouncements;
  material: KeyMaterial;
  policy: RotationPolicy;
  checkIntervalSeconds: number;
  /** The clock of the rotation schedule. */
  now: () => Date;
  audit: AuditLog;
  logger: Logger;
  metrics?: SharedKeyMetrics;
}

export interface SharedKeyMetrics {
  published: Gauge<'state'>;
  failures: Counter;
}

/**
 * moat_signing_keys and moat_signing_keys_refresh_failures_total, registered whatever the key source
 * (as moat_signing_failures_total is), so a dashboard reads 0 rather than a missing series.
 */
export function sharedKeyMetrics(registry: Registry): SharedKeyMetrics {
  return {
    // What this instance publishes, by state: a `next` key shows up ahead of each scheduled activation.
    published: new Gauge({
      name: 'moat_signing_keys',
      help: 'Signing keys this instance publishes from the database, by state (next, active, retired)',
      labelNames: ['state'] as const,
      registers: [registry],
    }),
    // Alert on any increase: this instance cannot load the keys the others use.
    failures: new Counter({
      name: 'moat_signing_keys_refresh_failures_total',
      help: 'Refreshes of the shared signing keys that failed; the keys loaded before stay in use',
      registers: [registry],
    }),
  };
}

export interface SharedSigningKeys {
  /** The key set as oidc-provider takes it: active keys sign, next and retired keys verify only. */
  jwks(): { keys: object[] };
  /** Runs `listener` with each new key set this instance loads. */
  onChange(listener: (jwks: { keys: object[] }) => void): void;
  /** Applies due transitions and loads the keys; resolves once this instance uses them. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/** `moat keys rotate` on the shared keys: the transitions made (committed, audited). */
export async function rotateSharedKeys(
  options: Pick<SharedSigningKeysOptions, 'store' | 'material' | 'policy' | 'audit' | 'logger'> & { now: number; immediately: boolean },
): Promise<KeyTransition[]> {
  const { material } = options;
  const made = await options.store.change(async (keys) => {
    const adopted = await adoption(keys, material, options.policy, options.now);
    const all = [...keys, ...adopted.map((t) => t.key)];
    return [...adopted, ...(await rotationOnDemand(all, options.policy, options.now, material.mint, options.immediately))];
  });
  await auditTransitions(made, { audit: options.audit, logger: options.logger, actor: 'operator' });
  await afterCommit(made, material, options.logger);
  return made;
}

/**
 * Loads the shared keys (making the first ones on a fresh database), then keeps them current:
 * notified changes and a periodic check both refresh. A refresh that fails keeps the keys in use
 * and says why; at start-up it throws, and Moat does not start without keys it can use.
 */
export async function createSharedSigningKeys(options: SharedSigningKeysOptions): Promise<SharedSigningKeys> {
  const { store, material, policy, logger } = options;
  const listeners: ((jwks: { keys: object[] }) => void)[] = [];
  let current: { keys: object[] } = { keys: [] };
  let loadedState = '';
  const { published, failures } = options.metrics ?? sharedKeyMetrics(new Registry());

  const load = async () => {
    const epoch = Math.floor(options.now().getTime() / 1000);
    const made = await store.change(async (keys) => {
      const adopted = await adoption(keys, material, policy, epoch);
      const all = [...keys, ...adopted.map((t) => t.key)];
      return [...adopted, ...(await dueTransitions(all, policy, epoch, material.mint))];
    });
    await auditTransitions(made, { audit: options.audit, logger, actor: 'system' });
    await afterCommit(made, material, logger);
    const keys = await store.list();
    const [problem] = keySetProblems(keys);
    if (problem !== undefined) throw new Error(`the signing keys in the database: ${problem}`);
    const state = keys
      .map((k) => `${k.kid}:${k.moat_state}`)
      .sort()
      .join(',');
    if (state === loadedState) return;
    current = await material.providerJwks(keys);
    loadedState = state;
    for (const st of ['next', 'active', 'retired'] as const) published.set({ state: st }, keys.filter((k) => k.moat_state === st).length);
    logger.info({ event: 'keys.loaded', keys: keys.map((k) => ({ kid: k.kid, alg: k.alg, state: k.moat_state as KeyState })) }, 'signing keys loaded');
    for (const listener of listeners) listener(current);
  };

  // One refresh at a time; a change heard during one is followed by another.
  let running: Promise<void> | undefined;
  let again = false;
  const refresh = async (): Promise<void> => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await load();
        } while (again);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const refreshInBackground = () => {
    refresh().catch((err: unknown) => {
      failures.inc();
      logger.error({ event: 'keys.refresh_failed', err }, 'signing keys could not be refreshed; the keys loaded before stay in use');
    });
  };

  await refresh();
  const timer = setInterval(refreshInBackground, options.checkIntervalSeconds * 1000);
  timer.unref();
  const unsubscribe = options.announcements.subscribe(refreshInBackground);
  return {
    jwks: () => current,
    onChange: (listener) => {
      listeners.push(listener);
    },
    refresh,
    async close() {
      clearInterval(timer);
      unsubscribe();
      await running?.catch(() => undefined);
    },
  };
}

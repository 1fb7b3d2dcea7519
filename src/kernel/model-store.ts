import type { AdapterPayload } from 'oidc-provider';

/**
 * What the oidc-provider adapter needs from a backend: the seven adapter methods, keyed by model
 * name, plus the guarantees oidc-provider does not give by itself.
 *
 * - `consume` is an atomic compare-and-set: of any number of concurrent calls for one id, exactly
 *   one returns `'consumed'`. oidc-provider reads `consumed` and then calls consume(), so without
 *   this two racing token requests could both redeem one authorization code.
 * - `revokeByGrantId` finds the grant's entries through an index, never a scan.
 * - `recordOnce` is an atomic insert-if-absent, for one-time values (a signed request's jti): of
 *   concurrent calls for one id exactly one returns true, so a replay cannot slip in between a
 *   lookup and a write.
 *
 * Implemented by the Postgres store (pg and the embedded PGlite), the Redis store and the
 * in-process store; test/storage/model-store-contract.ts runs against each.
 */
export interface ModelStore {
  /** Creates or replaces an entry; `expiresIn` is in seconds, absent means no expiry. */
  upsert(model: string, id: string, payload: AdapterPayload, expiresIn?: number): Promise<void>;
  /** The entry, or undefined when absent or expired. */
  find(model: string, id: string): Promise<AdapterPayload | undefined>;
  /** Session lookup by its `uid`. */
  findByUid(model: string, uid: string): Promise<AdapterPayload | undefined>;
  /** Device-flow lookup by `userCode`. */
  findByUserCode(model: string, userCode: string): Promise<AdapterPayload | undefined>;
  /**
   * Marks the entry consumed (sets `consumed` to the epoch seconds) if nobody did before.
   * `'consumed'`: this call did it; `'already-consumed'`: someone else did; `'absent'`: no entry.
   */
  consume(model: string, id: string): Promise<ConsumeResult>;
  /**
   * Stores `payload` under `id` unless a live entry is there: true when this call stored it, false
   * when the id was already taken. The entry expires after `expiresIn` seconds like any other.
   */
  recordOnce(model: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<boolean>;
  destroy(model: string, id: string): Promise<void>;
  /** Deletes every entry of `model` that carries this `grantId`. */
  revokeByGrantId(model: string, grantId: string): Promise<void>;
  /** Removes expired entries the backend does not expire by itself; returns how many. */
  purgeExpired(): Promise<number>;
  /** Readiness: resolves when the backend answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type ConsumeResult = 'consumed' | 'already-consumed' | 'absent';

/**
 * What a backend call was doing when its backend failed: a model-store method, a kind of SQL call,
 * or `connection` (a connection lost or refused outside any call). A closed set, so it can label a
 * metric.
 */
export type StorageOperation = Exclude<keyof ModelStore, 'close'> | 'query' | 'script' | 'transaction' | 'connection';

/**
 * Told of every backend call that failed because the backend was unavailable (each one a
 * StorageUnavailableError, or a lost connection); `moat_storage_errors_total` counts them.
 */
export type StorageErrorListener = (backend: 'postgres' | 'redis', operation: StorageOperation) => void;

/** Models that belong to a grant and are found through the grant index. */
export const GRANTABLE_MODELS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'ClientCredentials',
]);

import type { AdapterPayload } from 'oidc-provider';
import type { FederationFailureKind } from './federation-failure.ts';
import type { FederatedIdentity, PendingSignIn } from './upstream-idp.ts';

/*
 * What a federated sign-in keeps between its steps, in the short-lived store (Redis when configured,
 * so any instance serves the callback): the pending sign-in by its state, and the callback's outcome
 * by the interaction it belongs to. Both are taken at most once — a consume is an atomic
 * compare-and-set — so a replayed callback finds nothing (RFC 6749 §10.12, OIDC Core §3.1.2.1).
 */

const PENDING = 'FederatedSignIn';
const OUTCOME = 'FederatedOutcome';

export interface PendingFederatedSignIn extends PendingSignIn {
  /** The oidc-provider interaction the sign-in resumes. */
  uid: string;
}

export type FederatedOutcome = { ok: true; identity: FederatedIdentity } | { ok: false; kind: FederationFailureKind };

export interface SignInStates {
  savePending(pending: PendingFederatedSignIn, ttlSeconds: number): Promise<void>;
  /** The pending sign-in of this state, once; undefined when unknown, expired or already taken. */
  takePending(state: string): Promise<PendingFederatedSignIn | undefined>;
  saveOutcome(uid: string, outcome: FederatedOutcome, ttlSeconds: number): Promise<void>;
  /** The callback's outcome for this interaction, once. */
  takeOutcome(uid: string): Promise<FederatedOutcome | undefined>;
}

/** What the states need of the short-lived store (the ModelStore every backend implements has it). */
export interface ShortLivedStore {
  upsert(model: string, id: string, payload: AdapterPayload, expiresIn?: number): Promise<void>;
  find(model: string, id: string): Promise<AdapterPayload | undefined>;
  /** Atomic: of concurrent calls for one id, exactly one gets 'consumed'. */
  consume(model: string, id: string): Promise<'consumed' | 'already-consumed' | 'absent'>;
  destroy(model: string, id: string): Promise<void>;
}

export function createSignInStates(store: ShortLivedStore): SignInStates {
  const takeOnce = async (model: string, id: string): Promise<AdapterPayload | undefined> => {
    // Read first (consume marks, it does not return), then claim: of two racing callbacks one wins.
    const found = await store.find(model, id);
    if (found === undefined || found.consumed !== undefined) return undefined;
    if ((await store.consume(model, id)) !== 'consumed') return undefined;
    await store.destroy(model, id);
    return found;
  };
  return {
    savePending: (pending, ttl) => store.upsert(PENDING, pending.state, { pending } as AdapterPayload, ttl),
    async takePending(state) {
      const found = await takeOnce(PENDING, state);
      return found?.pending as PendingFederatedSignIn | undefined;
    },
    saveOutcome: (uid, outcome, ttl) => store.upsert(OUTCOME, uid, { outcome } as AdapterPayload, ttl),
    async takeOutcome(uid) {
      const found = await takeOnce(OUTCOME, uid);
      return found?.outcome as FederatedOutcome | undefined;
    },
  };
}

import type { Adapter, AdapterPayload, errors as ProviderErrors } from 'oidc-provider';
import type { ModelStore } from '../kernel/model-store.ts';
import { PROVIDER_OUTAGE } from '../kernel/error-responses.ts';
import { StorageUnavailableError } from '../kernel/storage-unavailable.ts';

/*
 * The oidc-provider adapter: the only place that decides which model lives in which store, and the
 * place where "exactly once" is enforced. oidc-provider checks `consumed` and then calls consume();
 * two racing requests can both pass the check, so the store's atomic consume decides, and the loser
 * is treated as the replay it is.
 */

/** Models that must survive a restart: Postgres. Everything else is short-lived: Redis. */
export const DURABLE_MODELS = new Set(['Client', 'Grant', 'RefreshToken', 'RegistrationAccessToken', 'InitialAccessToken']);

/**
 * How long a claimed one-time id (see `find` for ReplayDetection) is held before oidc-provider's
 * save replaces the claim with the real entry and lifetime.
 */
const REPLAY_CLAIM_SECONDS = 600;

/**
 * How long a backchannel authentication request is kept past its expiry. CIBA Core §11 answers a
 * poll of an expired auth_req_id with `expired_token`, "the Client will need to make a new
 * Authentication Request"; oidc-provider says so only of a request it still finds
 * (lib/actions/grants/ciba.js reads it ignoring expiry), and of one the store has dropped it can
 * only say invalid_grant. Kept longer is never taken for live: oidc-provider checks the payload's
 * own `exp` on every other read, so the bank app cannot approve it.
 */
const EXPIRED_CIBA_REQUEST_KEPT_SECONDS = 600;

/** What a replayed redemption revokes: every token of the grant, and the grant itself. */
const GRANT_TOKEN_MODELS = ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'ClientCredentials'];

export interface Stores {
  durable: ModelStore;
  shortLived: ModelStore;
}

type Errors = typeof ProviderErrors;

export function storeFor(stores: Stores, model: string): ModelStore {
  return DURABLE_MODELS.has(model) ? stores.durable : stores.shortLived;
}

/** Revokes every token of a grant and destroys the grant (introspection then answers inactive). */
export async function revokeGrant(stores: Stores, grantId: string): Promise<void> {
  await Promise.all([
    ...GRANT_TOKEN_MODELS.map((model) => storeFor(stores, model).revokeByGrantId(model, grantId)),
    storeFor(stores, 'Grant').destroy('Grant', grantId),
  ]);
}

/**
 * oidc-provider renders anything that is not one of its errors as a 500 server_error. A storage
 * outage is not a bug: it becomes a 503 `temporarily_unavailable` (RFC 6749 §4.1.2.1) the client may
 * retry, rendered by oidc-provider like any of its errors.
 */
function unavailable(errors: Errors, err: StorageUnavailableError): Error {
  const mapped = new errors.CustomOIDCProviderError('temporarily_unavailable', 'a storage backend is unavailable; retry shortly', { cause: err });
  return Object.assign(mapped, { ...PROVIDER_OUTAGE });
}

/** Runs a store call, turning an outage into the error oidc-provider renders as a 503. */
async function guarded<T>(errors: Errors, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof StorageUnavailableError) throw unavailable(errors, err);
    throw err;
  }
}

export function createAdapterFactory(stores: Stores, errors: Errors): new (model: string) => Adapter {
  return class MoatAdapter implements Adapter {
    private readonly model: string;
    private readonly store: ModelStore;

    constructor(model: string) {
      this.model = model;
      this.store = storeFor(stores, model);
    }

    upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const kept = this.model === 'BackchannelAuthenticationRequest' && expiresIn !== undefined ? expiresIn + EXPIRED_CIBA_REQUEST_KEPT_SECONDS : expiresIn;
      return guarded(errors, () => this.store.upsert(this.model, id, payload, kept));
    }

    find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model === 'ReplayDetection') return guarded(errors, () => this.claim(id));
      return guarded(errors, () => this.store.find(this.model, id));
    }

    /**
     * oidc-provider's ReplayDetection.unique() — the jti check of client assertions (RFC 7523 §3)
     * and DPoP proofs (RFC 9449 §11.1) — finds, then saves: two requests carrying one jti at once
     * could both find nothing and both be accepted (seen in a test). So this find claims the id
     * atomically: the first caller finds nothing and goes on to save the real entry over the
     * claim; every other caller finds the claim, and oidc-provider refuses it as the replay it is.
     */
    private async claim(id: string): Promise<AdapterPayload | undefined> {
      const now = Math.floor(Date.now() / 1000);
      const claim: AdapterPayload = { jti: id, kind: 'ReplayDetection', iat: now, exp: now + REPLAY_CLAIM_SECONDS };
      if (await this.store.recordOnce(this.model, id, claim, REPLAY_CLAIM_SECONDS)) return undefined;
      return (await this.store.find(this.model, id)) ?? claim;
    }

    findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return guarded(errors, () => this.store.findByUid(this.model, uid));
    }

    findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return guarded(errors, () => this.store.findByUserCode(this.model, userCode));
    }

    async consume(id: string): Promise<void> {
      const result = await guarded(errors, () => this.store.consume(this.model, id));
      if (result === 'consumed') return;
      // 'already-consumed': a concurrent request redeemed it first, so this one is a replay.
      // 'absent': it was revoked (by such a replay) or expired after oidc-provider read it.
      switch (this.model) {
        case 'AuthorizationCode':
        case 'RefreshToken': {
          if (result === 'already-consumed') {
            // FAPI 2.0 SP §5.3.2.1 / RFC 9700 §4.14.2: a reused code or rotated refresh token revokes the grant.
            const payload = await guarded(errors, () => this.store.find(this.model, id));
            if (payload?.grantId !== undefined) await guarded(errors, () => revokeGrant(stores, payload.grantId!));
          }
          throw new errors.InvalidGrant(this.model === 'AuthorizationCode' ? 'authorization code already consumed' : 'refresh token already used');
        }
        case 'PushedAuthorizationRequest':
          // FAPI 2.0 SP §5.3.2.2: a request_uri is one-time.
          throw new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used');
        default:
          return;
      }
    }

    destroy(id: string): Promise<void> {
      return guarded(errors, () => this.store.destroy(this.model, id));
    }

    revokeByGrantId(grantId: string): Promise<void> {
      return guarded(errors, () => this.store.revokeByGrantId(this.model, grantId));
    }
  };
}

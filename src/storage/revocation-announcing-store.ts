import type { ModelStore } from '../kernel/model-store.ts';

/*
 * Every path that ends a token's life goes through a model store: /revoke destroys an AccessToken,
 * a revoked grant (consent revoked or expired, a replayed code, a quarantined client) is
 * revokeByGrantId plus a destroyed Grant, and a deleted or updated client is a Client write. This
 * wrapper announces it (to every instance: src/gateway-check/token-facts-invalidation.ts) before
 * the call returns, so no instance keeps serving what it knew of the token.
 */

export type RevokedKind = 'token' | 'grant' | 'client';

export function revocationAnnouncingStore(store: ModelStore, announce: (kind: RevokedKind, id: string) => Promise<void>): ModelStore {
  return {
    find: (model, id) => store.find(model, id),
    findByUid: (model, uid) => store.findByUid(model, uid),
    findByUserCode: (model, code) => store.findByUserCode(model, code),
    consume: (model, id) => store.consume(model, id),
    recordOnce: (model, id, payload, expiresIn) => store.recordOnce(model, id, payload, expiresIn),
    purgeExpired: () => store.purgeExpired(),
    ping: () => store.ping(),
    close: () => store.close(),
    async upsert(model, id, payload, expiresIn) {
      await store.upsert(model, id, payload, expiresIn);
      if (model === 'Client') await announce('client', id);
    },
    async destroy(model, id) {
      await store.destroy(model, id);
      if (model === 'AccessToken') announce('token', id);
      else if (model === 'Grant') announce('grant', id);
      else if (model === 'Client') await announce('client', id);
    },
    async revokeByGrantId(model, grantId) {
      await store.revokeByGrantId(model, grantId);
      await announce('grant', grantId);
    },
  };
}

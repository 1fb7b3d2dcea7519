import { type Redis, ReplyError } from 'ioredis';
import type { AdapterPayload } from 'oidc-provider';
import type { ConsumeResult, ModelStore, StorageErrorListener, StorageOperation } from '../../kernel/model-store.ts';
import { StorageUnavailableError } from '../../kernel/storage-unavailable.ts';

/*
 * oidc-provider's short-lived models in Redis. Each entry is a JSON string with Redis expiry; the
 * `consumed` mark is a second key set with NX, so `consume` is atomic without re-encoding JSON in
 * Lua (cjson turns `[]` into `{}`). The grant index is a set per model and grant whose expiry is
 * kept at the longest member's. Single-node Redis (or Sentinel): the scripts touch keys they
 * compute, which Redis Cluster would not allow.
 */

/** Seconds of grace past expiry, as oidc-provider's own adapters allow for clock skew. */
const EXPIRY_GRACE_MS = 0;

const UPSERT = `
local entry, grant, uid, usercode, consumed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local payload, ttl, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
redis.call('DEL', consumed)
if ttl > 0 then redis.call('SET', entry, payload, 'PX', ttl) else redis.call('SET', entry, payload) end
if grant ~= '' then
  local existed = redis.call('EXISTS', grant)
  redis.call('SADD', grant, id)
  if ttl > 0 then
    local current = redis.call('PTTL', grant)
    if existed == 0 or (current >= 0 and current < ttl) then redis.call('PEXPIRE', grant, ttl) end
  else
    redis.call('PERSIST', grant)
  end
end
if uid ~= '' then if ttl > 0 then redis.call('SET', uid, id, 'PX', ttl) else redis.call('SET', uid, id) end end
if usercode ~= '' then if ttl > 0 then redis.call('SET', usercode, id, 'PX', ttl) else redis.call('SET', usercode, id) end end
return 1`;

const CONSUME = `
local entry, consumed = KEYS[1], KEYS[2]
local ttl = redis.call('PTTL', entry)
if ttl == -2 then return 0 end
local ok
if ttl > 0 then ok = redis.call('SET', consumed, ARGV[1], 'NX', 'PX', ttl) else ok = redis.call('SET', consumed, ARGV[1], 'NX') end
if ok then return 2 end
return 1`;

const REVOKE_GRANT = `
local grant, entryPrefix, consumedPrefix = KEYS[1], ARGV[1], ARGV[2]
local ids = redis.call('SMEMBERS', grant)
for _, id in ipairs(ids) do
  redis.call('DEL', entryPrefix .. id, consumedPrefix .. id)
end
redis.call('DEL', grant)
return #ids`;

type ScriptedRedis = Redis & {
  moatUpsert(...args: (string | number)[]): Promise<number>;
  moatConsume(...args: (string | number)[]): Promise<number>;
  moatRevokeGrant(...args: (string | number)[]): Promise<number>;
};

/**
 * The model store on a connected client. Every call that fails on an unavailable Redis is told to
 * `onUnavailable`, in `guarded` and only there.
 */
export function createRedisModelStore(client: Redis, keyPrefix: string, onUnavailable?: StorageErrorListener): ModelStore {
  const redis = client as ScriptedRedis;
  if (typeof redis.moatUpsert !== 'function') {
    redis.defineCommand('moatUpsert', { numberOfKeys: 5, lua: UPSERT });
    redis.defineCommand('moatConsume', { numberOfKeys: 2, lua: CONSUME });
    redis.defineCommand('moatRevokeGrant', { numberOfKeys: 1, lua: REVOKE_GRANT });
  }
  const entryKey = (model: string, id: string) => `${keyPrefix}m:${model}:${id}`;
  const consumedKey = (model: string, id: string) => `${keyPrefix}x:${model}:${id}`;
  const grantKey = (model: string, grantId: string) => `${keyPrefix}g:${model}:${grantId}`;
  const uidKey = (model: string, uid: string) => `${keyPrefix}u:${model}:${uid}`;
  const userCodeKey = (model: string, code: string) => `${keyPrefix}c:${model}:${code}`;

  const guarded = async <T>(operation: StorageOperation, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      // A script's own error is a bug, not an outage; an inner guarded call (destroy's find) was counted already.
      if (err instanceof ReplyError || err instanceof StorageUnavailableError) throw err;
      onUnavailable?.('redis', operation);
      throw new StorageUnavailableError('redis', { cause: err });
    }
  };

  const find = (model: string, id: string) =>
    guarded('find', async () => {
      const [payload, consumed] = await redis.mget(entryKey(model, id), consumedKey(model, id));
      if (payload === null || payload === undefined) return undefined;
      const parsed = JSON.parse(payload) as AdapterPayload;
      if (consumed !== null && consumed !== undefined) parsed.consumed = Number(consumed);
      return parsed;
    });

  const byIndex = (operation: 'findByUid' | 'findByUserCode', key: string, model: string) =>
    guarded(operation, async () => {
      const id = await redis.get(key);
      return id === null ? undefined : find(model, id);
    });

  return {
    upsert: (model, id, payload, expiresIn) =>
      guarded('upsert', async () => {
        const { consumed: _consumed, ...stored } = payload;
        await redis.moatUpsert(
          entryKey(model, id),
          payload.grantId === undefined ? '' : grantKey(model, payload.grantId),
          payload.uid === undefined ? '' : uidKey(model, payload.uid),
          payload.userCode === undefined ? '' : userCodeKey(model, payload.userCode),
          consumedKey(model, id),
          JSON.stringify(stored),
          expiresIn === undefined ? 0 : expiresIn * 1000 + EXPIRY_GRACE_MS,
          id,
        );
        if (payload.consumed !== undefined) await redis.moatConsume(entryKey(model, id), consumedKey(model, id), String(payload.consumed));
      }),
    find,
    findByUid: (model, uid) => byIndex('findByUid', uidKey(model, uid), model),
    findByUserCode: (model, userCode) => byIndex('findByUserCode', userCodeKey(model, userCode), model),
    recordOnce: (model, id, payload, expiresIn) =>
      guarded('recordOnce', async () => {
        const stored = await redis.set(entryKey(model, id), JSON.stringify(payload), 'PX', Math.ceil(expiresIn * 1000), 'NX');
        return stored === 'OK';
      }),
    consume: (model, id) =>
      guarded('consume', async (): Promise<ConsumeResult> => {
        const result = await redis.moatConsume(entryKey(model, id), consumedKey(model, id), String(Math.floor(Date.now() / 1000)));
        return result === 2 ? 'consumed' : result === 1 ? 'already-consumed' : 'absent';
      }),
    destroy: (model, id) =>
      guarded('destroy', async () => {
        const payload = await find(model, id);
        const keys = [entryKey(model, id), consumedKey(model, id)];
        if (payload?.uid !== undefined) keys.push(uidKey(model, payload.uid));
        if (payload?.userCode !== undefined) keys.push(userCodeKey(model, payload.userCode));
        const multi = redis.multi().del(...keys);
        if (payload?.grantId !== undefined) multi.srem(grantKey(model, payload.grantId), id);
        await multi.exec();
      }),
    revokeByGrantId: (model, grantId) =>
      guarded('revokeByGrantId', async () => {
        await redis.moatRevokeGrant(grantKey(model, grantId), `${keyPrefix}m:${model}:`, `${keyPrefix}x:${model}:`);
      }),
    // Redis expires entries itself; grant sets expire with their longest member.
    purgeExpired: async () => 0,
    ping: () =>
      guarded('ping', async () => {
        await redis.ping();
      }),
    close: async () => {
      redis.disconnect();
    },
  };
}

import type { AdapterPayload } from 'oidc-provider';
import type { ModelStore } from '../../src/kernel/model-store.ts';

/**
 * The storage contract every backend honours (test/storage/model-store.test.ts runs it against
 * Postgres, PGlite, Redis and the in-process store). Expiry is checked with short real lifetimes:
 * the stores read the clock of their backend, which a test cannot freeze. The three short-lived
 * entries are written together when the store opens, so their lifetimes run out during one wait
 * rather than three in turn (1.3 s each, per backend).
 */
export function describeModelStoreContract(name: string, open: () => Promise<{ store: ModelStore; close(): Promise<void> }>): void {
  describe(`${name} model store`, () => {
    let store: ModelStore;
    let close: () => Promise<void>;
    let n = 0;
    const id = () => {
      n += 1;
      return `id-${name}-${Date.now()}-${n}`;
    };

    /** What the expiry tests wrote with a one-second lifetime, and what the store said before it ran out. */
    let shortLived: {
      code: string;
      codeBeforeExpiry: AdapterPayload | undefined;
      jti: string;
      jtiRecordedFirst: boolean;
      refresh: string;
      /** 1.3 s after the last of them was written: each one's lifetime has passed, with the margin each test waited before. */
      expiredBy: number;
    };
    const untilExpired = async () => {
      const left = shortLived.expiredBy - Date.now();
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    };

    beforeAll(async () => {
      ({ store, close } = await open());
      const [code, jti, refresh] = [id(), id(), id()];
      await store.upsert('AuthorizationCode', code, { jti: code, grantId: 'g-exp' }, 1);
      const codeBeforeExpiry = await store.find('AuthorizationCode', code);
      const jtiRecordedFirst = await store.recordOnce('RegistrationRequestJti', jti, { jti }, 1);
      await store.upsert('RefreshToken', refresh, { jti: refresh }, 1);
      shortLived = { code, codeBeforeExpiry, jti, jtiRecordedFirst, refresh, expiredBy: Date.now() + 1300 };
    });
    afterAll(async () => {
      await close?.();
    });

    it('finds what was upserted, and nothing for an unknown id', async () => {
      const key = id();
      const payload: AdapterPayload = { jti: key, kind: 'AccessToken', grantId: 'g1', scope: 'openid accounts', extra: { nested: [1, 2] } };
      await store.upsert('AccessToken', key, payload, 60);
      expect(await store.find('AccessToken', key)).toEqual(payload);
      expect(await store.find('AccessToken', `${key}-missing`)).toBeUndefined();
      expect(await store.find('RefreshToken', key)).toBeUndefined();
    });

    it('keeps empty arrays and objects intact', async () => {
      const key = id();
      await store.upsert('Grant', key, { jti: key, kind: 'Grant', openid: { scope: 'openid' }, resources: {}, rejected: [] } as AdapterPayload);
      expect(await store.find('Grant', key)).toEqual({ jti: key, kind: 'Grant', openid: { scope: 'openid' }, resources: {}, rejected: [] });
    });

    it('replaces an entry on a second upsert', async () => {
      const key = id();
      await store.upsert('Session', key, { jti: key, uid: `${key}-uid`, accountId: 'a' }, 60);
      await store.upsert('Session', key, { jti: key, uid: `${key}-uid`, accountId: 'b' }, 60);
      expect((await store.find('Session', key))?.accountId).toBe('b');
    });

    it('forgets an entry once its lifetime has passed', async () => {
      const key = shortLived.code;
      expect(shortLived.codeBeforeExpiry).toBeDefined();
      await untilExpired();
      expect(await store.find('AuthorizationCode', key)).toBeUndefined();
      expect(await store.consume('AuthorizationCode', key)).toBe('absent');
    });

    it('records a one-time value for exactly one of many concurrent callers, and again once it expired', async () => {
      const key = id();
      const results = await Promise.all(Array.from({ length: 20 }, () => store.recordOnce('RegistrationRequestJti', key, { jti: key }, 60)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.find('RegistrationRequestJti', key)).toEqual({ jti: key });
      expect(await store.recordOnce('RegistrationRequestJti', key, { jti: key }, 60)).toBe(false);
      // An id upserted the ordinary way counts as taken too.
      const upserted = id();
      await store.upsert('RegistrationRequestJti', upserted, { jti: upserted }, 60);
      expect(await store.recordOnce('RegistrationRequestJti', upserted, { jti: upserted }, 60)).toBe(false);
      // Once its lifetime has passed (an expired row not yet purged, in Postgres) the id is free again.
      const expiring = shortLived.jti;
      expect(shortLived.jtiRecordedFirst).toBe(true);
      await untilExpired();
      expect(await store.recordOnce('RegistrationRequestJti', expiring, { jti: expiring, again: true }, 60)).toBe(true);
      expect(await store.find('RegistrationRequestJti', expiring)).toEqual({ jti: expiring, again: true });
    });

    it('finds a session by its uid and a device code by its user code', async () => {
      const key = id();
      await store.upsert('Session', key, { jti: key, uid: `uid-${key}` }, 60);
      await store.upsert('DeviceCode', key, { jti: key, userCode: `UC-${key}` }, 60);
      expect((await store.findByUid('Session', `uid-${key}`))?.jti).toBe(key);
      expect((await store.findByUserCode('DeviceCode', `UC-${key}`))?.jti).toBe(key);
      expect(await store.findByUid('Session', 'uid-unknown')).toBeUndefined();
    });

    it('destroys an entry and its index entries', async () => {
      const key = id();
      await store.upsert('Session', key, { jti: key, uid: `uid-${key}` }, 60);
      await store.destroy('Session', key);
      expect(await store.find('Session', key)).toBeUndefined();
      expect(await store.findByUid('Session', `uid-${key}`)).toBeUndefined();
    });

    it('revokes by grant id only the entries of that grant and model', async () => {
      const grant = id();
      const [a, b, c, d] = [id(), id(), id(), id()];
      await store.upsert('AccessToken', a, { jti: a, grantId: grant }, 60);
      await store.upsert('AccessToken', b, { jti: b, grantId: grant });
      await store.upsert('AccessToken', c, { jti: c, grantId: `${grant}-other` }, 60);
      await store.upsert('RefreshToken', d, { jti: d, grantId: grant }, 60);
      await store.revokeByGrantId('AccessToken', grant);
      expect(await store.find('AccessToken', a)).toBeUndefined();
      expect(await store.find('AccessToken', b)).toBeUndefined();
      expect(await store.find('AccessToken', c)).toBeDefined();
      expect(await store.find('RefreshToken', d)).toBeDefined();
    });

    it('marks an entry consumed with the epoch time, once', async () => {
      const key = id();
      await store.upsert('AuthorizationCode', key, { jti: key, grantId: 'g' }, 60);
      const before = Math.floor(Date.now() / 1000);
      expect(await store.consume('AuthorizationCode', key)).toBe('consumed');
      const consumed = (await store.find('AuthorizationCode', key))?.consumed as number;
      expect(consumed).toBeGreaterThanOrEqual(before - 1);
      expect(consumed).toBeLessThanOrEqual(before + 2);
      expect(await store.consume('AuthorizationCode', key)).toBe('already-consumed');
      expect(await store.consume('AuthorizationCode', `${key}-missing`)).toBe('absent');
    });

    it('lets exactly one of 20 concurrent consume calls win', async () => {
      const key = id();
      await store.upsert('AuthorizationCode', key, { jti: key, grantId: 'g' }, 60);
      const results = await Promise.all(Array.from({ length: 20 }, () => store.consume('AuthorizationCode', key)));
      expect(results.filter((r) => r === 'consumed')).toHaveLength(1);
      expect(results.filter((r) => r === 'already-consumed')).toHaveLength(19);
    });

    it('purges expired entries', async () => {
      const key = shortLived.refresh;
      await untilExpired();
      await store.purgeExpired();
      expect(await store.find('RefreshToken', key)).toBeUndefined();
    });

    it('answers a ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}

import type { ModelStore } from '../../src/kernel/model-store.ts';
import { createIntrospectionScope } from '../../src/provider/introspection-scope.ts';
import { createMemoryModelStore } from '../../src/storage/embedded/memory-model-store.ts';
import { recordingTokenLookups, refreshTokenReadsAfterShortLived } from '../../src/storage/introspection-token-lookups.ts';

/*
 * Introspection without token_type_hint looks a value up as AccessToken, ClientCredentials and
 * RefreshToken at once (oidc-provider's lib/helpers/token_find.js) and keeps the first found, in
 * that order. The refresh-token read (Postgres) is skipped when an earlier lookup of the same request
 * found the value, and made otherwise (src/storage/introspection-token-lookups.ts). The stores are
 * the in-process store; the reads that reach the durable one are counted.
 */

function counting(store: ModelStore): { store: ModelStore; reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    store: {
      ...store,
      find: (model, id) => {
        reads.push(model);
        return store.find(model, id);
      },
    },
  };
}

describe('introspection token lookups', () => {
  const scope = createIntrospectionScope('/introspect');
  const lookups = () => scope.current()?.tokenLookups;
  const setUp = () => {
    const shortLived = createMemoryModelStore();
    const durable = counting(createMemoryModelStore());
    return {
      shortLived: recordingTokenLookups(shortLived, lookups),
      durable: refreshTokenReadsAfterShortLived(durable.store, lookups),
      durableReads: durable.reads,
    };
  };
  /** The three lookups as oidc-provider makes them for a hint-less introspection: all at once, access token first. */
  const findToken = (stores: ReturnType<typeof setUp>, value: string) =>
    Promise.all([stores.shortLived.find('AccessToken', value), stores.shortLived.find('ClientCredentials', value), stores.durable.find('RefreshToken', value)]);
  const introspecting = async <T>(path: string, run: () => Promise<T>): Promise<T> => {
    let result: T | undefined;
    await scope.middleware({ method: 'POST', path } as never, async () => {
      result = await run();
    });
    return result as T;
  };

  it('reads no refresh token for a value an earlier lookup found as an access token', async () => {
    const stores = setUp();
    await stores.shortLived.upsert('AccessToken', 'at-1', { jti: 'at-1', kind: 'AccessToken' }, 60);
    const [accessToken, clientCredentials, refreshToken] = await introspecting('/introspect', () => findToken(stores, 'at-1'));
    expect(accessToken).toMatchObject({ kind: 'AccessToken' });
    expect(clientCredentials).toBeUndefined();
    expect(refreshToken).toBeUndefined();
    expect(stores.durableReads).toEqual([]);
  });

  it('reads the refresh token when the short-lived lookups found nothing, so a refresh token still introspects', async () => {
    const stores = setUp();
    await stores.durable.upsert('RefreshToken', 'rt-1', { jti: 'rt-1', kind: 'RefreshToken' }, 3600);
    const [accessToken, clientCredentials, refreshToken] = await introspecting('/introspect', () => findToken(stores, 'rt-1'));
    expect([accessToken, clientCredentials]).toEqual([undefined, undefined]);
    expect(refreshToken).toMatchObject({ kind: 'RefreshToken' });
    expect(stores.durableReads).toEqual(['RefreshToken']);
  });

  it('reads the refresh token as before outside an introspection, and for another value in one', async () => {
    const stores = setUp();
    await stores.shortLived.upsert('AccessToken', 'at-1', { jti: 'at-1', kind: 'AccessToken' }, 60);
    await findToken(stores, 'at-1');
    await introspecting('/token', () => findToken(stores, 'at-1'));
    await introspecting('/introspect', async () => {
      await stores.shortLived.find('AccessToken', 'at-1');
      return stores.durable.find('RefreshToken', 'another-value');
    });
    expect(stores.durableReads).toEqual(['RefreshToken', 'RefreshToken', 'RefreshToken']);
  });

  it('keeps every request’s lookups apart', async () => {
    const stores = setUp();
    await stores.shortLived.upsert('AccessToken', 'at-1', { jti: 'at-1', kind: 'AccessToken' }, 60);
    await introspecting('/introspect', () => stores.shortLived.find('AccessToken', 'at-1'));
    // A later introspection of the same value, asking for the refresh token first (token_type_hint=refresh_token).
    await introspecting('/introspect', () => stores.durable.find('RefreshToken', 'at-1'));
    expect(stores.durableReads).toEqual(['RefreshToken']);
  });
});

import { createInvalidatingCache } from '../../src/caching/invalidating-cache.ts';
import { createLocalInvalidationBus } from '../../src/caching/invalidation.ts';
import type { ModelStore } from '../../src/kernel/model-store.ts';
import { createIntrospectionScope } from '../../src/provider/introspection-scope.ts';
import { createMemoryModelStore } from '../../src/storage/embedded/memory-model-store.ts';
import { cachedModelStore } from '../../src/storage/cached-model-store.ts';

/*
 * Introspection's Grant reads from memory, and no other read (src/storage/cached-model-store.ts):
 * the in-process model store underneath, the reads that reach it counted; the introspection scope
 * is the one Moat's app runs POST /introspect in. The clock is injected; nothing here waits.
 */

const GRANT = { accountId: 'cust-alice', clientId: 'tpp-1', kind: 'Grant', openid: { scope: 'openid accounts' } };

/** The in-process model store, with the reads of one model that reach it counted. */
function storeCountingReads(counted: string): { store: ModelStore; reads: () => number } {
  const store = createMemoryModelStore();
  let reads = 0;
  return {
    store: {
      ...store,
      find: (model, id) => {
        if (model === counted) reads += 1;
        return store.find(model, id);
      },
    },
    reads: () => reads,
  };
}

describe('the introspection Grant cache', () => {
  let clock = 0;
  const bus = createLocalInvalidationBus();
  const scope = createIntrospectionScope('/introspect');
  /** Runs `read` as Moat's app runs a request to `path`: through the scope's middleware. */
  const during = async <T>(method: string, path: string, read: () => Promise<T>): Promise<T> => {
    let result: T | undefined;
    await scope.middleware({ method, path } as never, async () => {
      result = await read();
    });
    return result as T;
  };
  const setUp = () => {
    const { store, reads } = storeCountingReads('Grant');
    const cache = createInvalidatingCache<string | undefined>({ bus, topic: 'grant', maxEntries: 100, maxAgeMs: 1000, now: () => clock });
    return { cached: cachedModelStore(store, { model: 'Grant', cache, servesReadsWhen: scope.active }), grantReads: reads };
  };
  beforeEach(() => {
    clock = 1_000_000;
  });

  it('answers an introspection’s second read of a grant from memory, each caller with its own copy', async () => {
    const { cached, grantReads } = setUp();
    await cached.upsert('Grant', 'g1', GRANT, 3600);
    const first = await during('POST', '/introspect', () => cached.find('Grant', 'g1'));
    const second = await during('POST', '/introspect', () => cached.find('Grant', 'g1'));
    expect(second).toEqual(first);
    expect(second).toMatchObject(GRANT);
    expect(second).not.toBe(first);
    expect(grantReads()).toBe(1);
    // Past the cache's bound the grant is read again.
    clock += 1000;
    await during('POST', '/introspect', () => cached.find('Grant', 'g1'));
    expect(grantReads()).toBe(2);
  });

  it('reads the store for every other request, since those paths save the Grant back', async () => {
    const { cached, grantReads } = setUp();
    await cached.upsert('Grant', 'g1', GRANT, 3600);
    await during('POST', '/introspect', () => cached.find('Grant', 'g1'));
    for (const [method, path] of [
      ['POST', '/token'],
      ['GET', '/authorize'],
      ['GET', '/introspect'],
      ['POST', '/introspect/extra'],
      ['PUT', '/grants/g1'],
    ] as const) {
      await during(method, path, () => cached.find('Grant', 'g1'));
    }
    await cached.find('Grant', 'g1');
    expect(grantReads()).toBe(7);
  });

  it('keeps no other model, even for an introspection', async () => {
    const { store, reads: clientReads } = storeCountingReads('Client');
    const cache = createInvalidatingCache<string | undefined>({ bus, topic: 'grant', maxEntries: 100, maxAgeMs: 1000, now: () => clock });
    const cached = cachedModelStore(store, { model: 'Grant', cache, servesReadsWhen: scope.active });
    await cached.upsert('Client', 'tpp-1', { client_id: 'tpp-1' });
    await during('POST', '/introspect', () => cached.find('Client', 'tpp-1'));
    await during('POST', '/introspect', () => cached.find('Client', 'tpp-1'));
    expect(clientReads()).toBe(2);
  });

  it('forgets a grant saved, destroyed or revoked through it before the call returns', async () => {
    const { cached, grantReads } = setUp();
    await cached.upsert('Grant', 'g1', GRANT, 3600);
    const introspectRead = () => during('POST', '/introspect', () => cached.find('Grant', 'g1'));
    await introspectRead();

    await cached.upsert('Grant', 'g1', { ...GRANT, accountId: 'cust-bob' }, 3600);
    expect(await introspectRead()).toMatchObject({ accountId: 'cust-bob' });

    await cached.revokeByGrantId('AccessToken', 'g1');
    await introspectRead();

    await cached.destroy('Grant', 'g1');
    expect(await introspectRead()).toBeUndefined();
    expect(grantReads()).toBe(4);
  });

  it('forgets a grant when its change is announced, as another instance’s change is', async () => {
    const { cached, grantReads } = setUp();
    await cached.upsert('Grant', 'g1', GRANT, 3600);
    const introspectRead = () => during('POST', '/introspect', () => cached.find('Grant', 'g1'));
    await introspectRead();
    await introspectRead();
    expect(grantReads()).toBe(1);
    await bus.publish('grant', 'g1');
    await introspectRead();
    expect(grantReads()).toBe(2);
    // An announcement about another topic's key of the same name is not this grant's.
    await bus.publish('consent-grant', 'g1');
    await introspectRead();
    expect(grantReads()).toBe(2);
  });
});

describe('the client metadata cache', () => {
  let clock = 0;
  const bus = createLocalInvalidationBus();
  const setUp = () => {
    const { store, reads } = storeCountingReads('Client');
    const cache = createInvalidatingCache<string | undefined>({ bus, topic: 'client', maxEntries: 100, maxAgeMs: 1000, now: () => clock });
    return { cached: cachedModelStore(store, { model: 'Client', cache }), clientReads: reads };
  };
  beforeEach(() => {
    clock = 1_000_000;
  });

  it('answers every read from memory, outside any request scope, each caller with its own copy', async () => {
    const { cached, clientReads } = setUp();
    await cached.upsert('Client', 'tpp-1', { client_id: 'tpp-1', redirect_uris: ['https://tpp.example/cb'] });
    const first = await cached.find('Client', 'tpp-1');
    const second = await cached.find('Client', 'tpp-1');
    expect(second).toEqual(first);
    expect(second).not.toBe(first);
    expect(clientReads()).toBe(1);
    clock += 1000;
    await cached.find('Client', 'tpp-1');
    expect(clientReads()).toBe(2);
  });

  it('forgets a client updated or deleted through it, or announced by another instance', async () => {
    const { cached, clientReads } = setUp();
    await cached.upsert('Client', 'tpp-1', { client_id: 'tpp-1', client_name: 'Old' });
    await cached.find('Client', 'tpp-1');
    await cached.upsert('Client', 'tpp-1', { client_id: 'tpp-1', client_name: 'New' });
    expect(await cached.find('Client', 'tpp-1')).toMatchObject({ client_name: 'New' });
    await bus.publish('client', 'tpp-1');
    await cached.find('Client', 'tpp-1');
    await cached.destroy('Client', 'tpp-1');
    expect(await cached.find('Client', 'tpp-1')).toBeUndefined();
    expect(clientReads()).toBe(4);
  });

  it('does not take a grant revocation for a client’s change', async () => {
    const { cached, clientReads } = setUp();
    await cached.upsert('Client', 'tpp-1', { client_id: 'tpp-1' });
    await cached.find('Client', 'tpp-1');
    await cached.revokeByGrantId('AccessToken', 'tpp-1');
    await cached.find('Client', 'tpp-1');
    expect(clientReads()).toBe(1);
  });
});

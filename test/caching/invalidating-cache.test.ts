import { createInvalidatingCache } from '../../src/caching/invalidating-cache.ts';
import { createListenerSet, createLocalInvalidationBus, parseInvalidation, type InvalidationBus } from '../../src/caching/invalidation.ts';

/*
 * The in-process cache behind the client, certificate-status and consent lookups: bounded, forgets
 * on announcement, keeps nothing while announcements cannot be heard, and never keeps a read that
 * raced a change. The clock is injected; nothing here waits.
 */

/** A bus whose liveness the test switches, as a lost and restored LISTEN connection would. */
function switchableBus(): InvalidationBus & { setLive(live: boolean): void } {
  const listeners = createListenerSet();
  let live = true;
  return {
    publish: async (topic, key) => listeners.invalidate(topic, key),
    subscribe: (l) => listeners.add(l),
    get live() {
      return live;
    },
    setLive(next: boolean) {
      live = next;
      listeners.reset();
    },
    close: async () => {},
  };
}

function counted<V>(value: () => V) {
  const calls: string[] = [];
  return {
    calls,
    load: (key: string) => async () => {
      calls.push(key);
      return value();
    },
  };
}

describe('the invalidating cache', () => {
  let clock = 0;
  const now = () => clock;
  beforeEach(() => {
    clock = 1_000_000;
  });

  it('tells of every read whether memory or the source answered it (moat_cache_reads_total)', async () => {
    const reads: string[] = [];
    const cache = createInvalidatingCache<string>({
      bus: createLocalInvalidationBus(),
      topic: 'grant',
      maxEntries: 10,
      maxAgeMs: 1000,
      now,
      onRead: (result) => reads.push(result),
    });
    const source = counted(() => 'v1');
    await cache.get('a', source.load('a'));
    await cache.get('a', source.load('a'));
    cache.invalidate('a');
    await cache.get('a', source.load('a'));
    clock += 1000;
    await cache.get('a', source.load('a'));
    expect(reads).toEqual(['miss', 'hit', 'miss', 'miss']);
    expect(source.calls).toHaveLength(3);
  });

  it('reads once, then answers from memory', async () => {
    const cache = createInvalidatingCache<string>({ bus: createLocalInvalidationBus(), topic: 'client', maxEntries: 10, maxAgeMs: 1000, now });
    const source = counted(() => 'v1');
    expect(await cache.get('a', source.load('a'))).toBe('v1');
    expect(await cache.get('a', source.load('a'))).toBe('v1');
    expect(source.calls).toEqual(['a']);
  });

  it('forgets an entry when its change is announced on its topic, and only then', async () => {
    const bus = createLocalInvalidationBus();
    const cache = createInvalidatingCache<string>({ bus, topic: 'certificate', maxEntries: 10, maxAgeMs: 1000, now });
    let value = 'active';
    const source = counted(() => value);
    await cache.get('t1', source.load('t1'));
    await bus.publish('client', 't1');
    expect(await cache.get('t1', source.load('t1'))).toBe('active');
    value = 'revoked';
    await bus.publish('certificate', 't1');
    expect(await cache.get('t1', source.load('t1'))).toBe('revoked');
    expect(source.calls).toEqual(['t1', 't1']);
  });

  it('forgets an entry invalidated on this instance before the next read', async () => {
    const cache = createInvalidatingCache<string>({ bus: createLocalInvalidationBus(), topic: 'client', maxEntries: 10, maxAgeMs: 1000, now });
    let value = 'v1';
    await cache.get('a', async () => value);
    value = 'v2';
    cache.invalidate('a');
    expect(await cache.get('a', async () => value)).toBe('v2');
  });

  it('never serves an entry older than maxAgeMs, announcements or not', async () => {
    const cache = createInvalidatingCache<string>({ bus: createLocalInvalidationBus(), topic: 'client', maxEntries: 10, maxAgeMs: 1000, now });
    const source = counted(() => 'v');
    await cache.get('a', source.load('a'));
    clock += 999;
    await cache.get('a', source.load('a'));
    clock += 1;
    await cache.get('a', source.load('a'));
    expect(source.calls).toEqual(['a', 'a']);
  });

  it('does not keep a read that was under way when a change was announced', async () => {
    const bus = createLocalInvalidationBus();
    const cache = createInvalidatingCache<string>({ bus, topic: 'consent-grant', maxEntries: 10, maxAgeMs: 1000, now });
    let release!: () => void;
    const slowRead = cache.get(
      'g1',
      () =>
        new Promise<string>((resolve) => {
          release = () => resolve('Authorised');
        }),
    );
    // The consent is revoked while the read (which saw it Authorised) is on its way back.
    await bus.publish('consent-grant', 'g1');
    release();
    expect(await slowRead).toBe('Authorised');
    expect(await cache.get('g1', async () => 'Revoked')).toBe('Revoked');
    expect(cache.size).toBe(1);
  });

  it('empties and reads through while the bus is not live, and caches again once it is back', async () => {
    const bus = switchableBus();
    const cache = createInvalidatingCache<string>({ bus, topic: 'client', maxEntries: 10, maxAgeMs: 1000, now });
    const source = counted(() => 'v');
    await cache.get('a', source.load('a'));
    bus.setLive(false);
    expect(cache.size).toBe(0);
    await cache.get('a', source.load('a'));
    await cache.get('a', source.load('a'));
    expect(cache.size).toBe(0);
    bus.setLive(true);
    await cache.get('a', source.load('a'));
    await cache.get('a', source.load('a'));
    expect(source.calls).toEqual(['a', 'a', 'a', 'a']);
  });

  it('keeps at most maxEntries, dropping the one read longest ago', async () => {
    const cache = createInvalidatingCache<string>({ bus: createLocalInvalidationBus(), topic: 'client', maxEntries: 2, maxAgeMs: 1000, now });
    const source = counted(() => 'v');
    await cache.get('a', source.load('a'));
    clock += 1;
    await cache.get('b', source.load('b'));
    clock += 1;
    // A hit does not make 'a' younger: it expires 1000 ms after it was read, whatever uses it since.
    await cache.get('a', source.load('a'));
    await cache.get('c', source.load('c'));
    expect(cache.size).toBe(2);
    await cache.get('b', source.load('b'));
    await cache.get('a', source.load('a'));
    expect(source.calls).toEqual(['a', 'b', 'c', 'a']);
  });

  it('holds no entry past maxAgeMs once another is read: a stream of reads keeps only the last second of them', async () => {
    const cache = createInvalidatingCache<string>({ bus: createLocalInvalidationBus(), topic: 'consent-grant', maxEntries: 5000, maxAgeMs: 1000, now });
    const source = counted(() => 'Authorised');
    // One consent per flow, a flow every 10 ms: 100 reads live within any second.
    for (let flow = 0; flow < 3000; flow += 1) {
      await cache.get(`g${flow}`, source.load(`g${flow}`));
      clock += 10;
    }
    // One second's reads, and at most a quarter of a second's more between two walks.
    expect(cache.size).toBeGreaterThanOrEqual(100);
    expect(cache.size).toBeLessThanOrEqual(125);
    // The newest are still served from memory.
    await cache.get('g2999', source.load('g2999'));
    expect(source.calls).toHaveLength(3000);
  });

  it('does not keep a read whose load took longer than maxAgeMs: it would be stale when stored', async () => {
    const cache = createInvalidatingCache<string>({ bus: createLocalInvalidationBus(), topic: 'client', maxEntries: 10, maxAgeMs: 1000, now });
    expect(
      await cache.get('a', async () => {
        clock += 1000;
        return 'v';
      }),
    ).toBe('v');
    expect(cache.size).toBe(0);
  });

  it('gives each caller its own copy when asked to', async () => {
    const cache = createInvalidatingCache<{ scopes: string[] }>({
      bus: createLocalInvalidationBus(),
      topic: 'client',
      maxEntries: 2,
      maxAgeMs: 1000,
      now,
      copy: structuredClone,
    });
    const first = await cache.get('a', async () => ({ scopes: ['accounts'] }));
    first.scopes.push('payments');
    expect(await cache.get('a', async () => ({ scopes: [] }))).toEqual({ scopes: ['accounts'] });
  });

  it('reads only payloads meant for it', () => {
    expect(parseInvalidation('client:abc:def')).toEqual({ topic: 'client', key: 'abc:def' });
    expect(parseInvalidation('certificate:')).toEqual({ topic: 'certificate', key: '' });
    expect(parseInvalidation('something:else')).toBeUndefined();
    expect(parseInvalidation('client')).toBeUndefined();
  });
});

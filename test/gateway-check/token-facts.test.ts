import { createTokenFactsCache, type TokenFacts } from '../../src/gateway-check/token-facts.ts';

/*
 * The gateway check's per-token cache (issue 22): kept for at most the token's lifetime, dropped at
 * once by an announcement naming its token, grant, client or certificate, never kept from a read
 * that raced a change, nothing kept while announcements cannot be heard.
 */

const NOW = 1_800_000_000;

function facts(overrides: Partial<TokenFacts> = {}): TokenFacts {
  return {
    tokenId: 'at-1',
    clientId: 'client-1',
    grantId: 'grant-1',
    accountId: 'cust-alice',
    scopes: ['accounts'],
    audiences: ['https://api.bank.example/accounts'],
    x5t: 'thumb-1',
    jkt: undefined,
    expiresAt: NOW + 300,
    consent: { id: 'aac-1', accountIds: ['acc-1'], permissions: ['ReadAccountsBasic'] },
    ...overrides,
  };
}

/** A loader that counts its calls. */
function loader(value: TokenFacts | undefined) {
  const load = async () => {
    load.calls += 1;
    return value;
  };
  load.calls = 0;
  return load;
}

describe('the gateway check token facts cache', () => {
  let now: number;
  beforeEach(() => {
    now = NOW;
  });

  it('answers a token from memory after its first read, until the token expires', async () => {
    const cache = createTokenFactsCache({ maxEntries: 10, now: () => now });
    const load = loader(facts());
    await cache.get('token-a', load);
    await cache.get('token-a', load);
    expect(load.calls).toBe(1);
    now = NOW + 300;
    await cache.get('token-a', load);
    expect(load.calls).toBe(2);
  });

  it('does not keep a token that was not found', async () => {
    const cache = createTokenFactsCache({ maxEntries: 10, now: () => now });
    const load = loader(undefined);
    await cache.get('token-a', load);
    await cache.get('token-a', load);
    expect(load.calls).toBe(2);
  });

  it.each([
    ['token', 'at-1'],
    ['grant', 'grant-1'],
    ['client', 'client-1'],
    ['certificate', 'thumb-1'],
  ] as const)('forgets a token at once when its %s is announced', async (key, value) => {
    const cache = createTokenFactsCache({ maxEntries: 10, now: () => now });
    const load = loader(facts());
    await cache.get('token-a', load);
    await cache.get('token-b', loader(facts({ tokenId: 'at-2', grantId: 'grant-2', clientId: 'client-2', x5t: 'thumb-2' })));
    cache.forget(key, value);
    expect(cache.size).toBe(1);
    await cache.get('token-a', load);
    expect(load.calls).toBe(2);
  });

  it('does not keep what a read returned when a change was announced while it ran', async () => {
    const cache = createTokenFactsCache({ maxEntries: 10, now: () => now });
    let release!: () => void;
    const pending = cache.get(
      'token-a',
      () =>
        new Promise<TokenFacts>((done) => {
          release = () => done(facts());
        }),
    );
    cache.forget('grant', 'grant-1');
    release();
    await pending;
    expect(cache.size).toBe(0);
  });

  it('keeps nothing while announcements from other instances cannot be heard', async () => {
    let live = false;
    const cache = createTokenFactsCache({ maxEntries: 10, now: () => now, live: () => live });
    const load = loader(facts());
    await cache.get('token-a', load);
    await cache.get('token-a', load);
    expect(load.calls).toBe(2);
    live = true;
    await cache.get('token-a', load);
    await cache.get('token-a', load);
    expect(load.calls).toBe(3);
    live = false;
    await cache.get('token-a', load);
    expect(load.calls).toBe(4);
  });

  it('holds at most maxEntries tokens, dropping the least recently used', async () => {
    const cache = createTokenFactsCache({ maxEntries: 2, now: () => now });
    const a = loader(facts());
    await cache.get('token-a', a);
    await cache.get('token-b', loader(facts({ tokenId: 'at-2' })));
    await cache.get('token-a', a);
    await cache.get('token-c', loader(facts({ tokenId: 'at-3' })));
    expect(cache.size).toBe(2);
    await cache.get('token-a', a);
    expect(a.calls).toBe(1);
  });
});

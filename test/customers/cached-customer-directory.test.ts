import { createInvalidatingCache } from '../../src/caching/invalidating-cache.ts';
import { createLocalInvalidationBus } from '../../src/caching/invalidation.ts';
import { cachedCustomerDirectory, copyCustomer } from '../../src/customers/cached-customer-directory.ts';
import type { Customer, FederatedCustomerDirectory } from '../../src/customers/customer-directory.ts';

/*
 * The customer behind every token issued, read from memory (src/customers/cached-customer-directory.ts):
 * a directory underneath that counts the lookups reaching it, the cache's clock injected; nothing
 * here waits. The announcements by Postgres across instances: test/scale/cache-invalidation.test.ts.
 */

/** A bank IdP's directory as Moat keeps it, in a Map, with the lookups that reach it counted. */
function countingDirectory() {
  const rows = new Map<string, Customer>([['cust-alice', { id: 'cust-alice', name: 'Alice Example' }]]);
  const lookups: string[] = [];
  const directory: FederatedCustomerDirectory = {
    authenticate: async () => undefined,
    findById: async (id) => {
      lookups.push(id);
      const row = rows.get(id);
      return row === undefined ? undefined : { ...row };
    },
    record: async (customer) => {
      rows.set(customer.id, { ...customer });
    },
  };
  return { directory, rows, lookups };
}

describe('the customer cache', () => {
  let clock = 0;
  const bus = createLocalInvalidationBus();
  const setUp = () => {
    const source = countingDirectory();
    const cache = createInvalidatingCache<Customer | undefined>({
      bus,
      topic: 'customer',
      maxEntries: 100,
      maxAgeMs: 1000,
      now: () => clock,
      copy: copyCustomer,
    });
    return { ...source, cached: cachedCustomerDirectory(source.directory, cache) };
  };
  beforeEach(() => {
    clock = 1_000_000;
  });

  it('answers a lookup from memory until its bound, each caller with its own copy', async () => {
    const { cached, lookups } = setUp();
    const first = await cached.findById('cust-alice');
    const second = await cached.findById('cust-alice');
    expect(second).toEqual({ id: 'cust-alice', name: 'Alice Example' });
    expect(second).not.toBe(first);
    first!.name = 'changed by a caller';
    expect((await cached.findById('cust-alice'))?.name).toBe('Alice Example');
    expect(lookups).toEqual(['cust-alice']);
    clock += 1000;
    await cached.findById('cust-alice');
    expect(lookups).toEqual(['cust-alice', 'cust-alice']);
  });

  it('forgets a customer when its change is announced (another instance, the CLI, an operator), and only that customer', async () => {
    const { cached, rows, lookups } = setUp();
    await cached.findById('cust-alice');
    await cached.findById('cust-bob');
    rows.delete('cust-alice');
    await bus.publish('customer', 'cust-alice');
    expect(await cached.findById('cust-alice')).toBeUndefined();
    // A lookup that found nothing is kept too, until the customer's arrival is announced.
    await cached.findById('cust-bob');
    expect(lookups).toEqual(['cust-alice', 'cust-bob', 'cust-alice']);
    rows.set('cust-bob', { id: 'cust-bob', name: 'Bob Example' });
    await bus.publish('customer', 'cust-bob');
    expect(await cached.findById('cust-bob')).toEqual({ id: 'cust-bob', name: 'Bob Example' });
    // Another topic's key of the same name is not this customer's.
    await bus.publish('client', 'cust-alice');
    await cached.findById('cust-alice');
    expect(lookups).toEqual(['cust-alice', 'cust-bob', 'cust-alice', 'cust-bob']);
  });

  it('forgets a customer the bank IdP vouched for as soon as it is recorded through this instance', async () => {
    const { cached, lookups } = setUp();
    expect(await cached.findById('cust-carol')).toBeUndefined();
    await (cached as FederatedCustomerDirectory).record({ id: 'cust-carol', name: 'Carol Example' }, 'https://idp.bank.example');
    expect(await cached.findById('cust-carol')).toEqual({ id: 'cust-carol', name: 'Carol Example' });
    expect(lookups).toEqual(['cust-carol', 'cust-carol']);
  });

  it('always asks the directory at sign-in, and keeps the plain directory plain', async () => {
    let signIns = 0;
    const plain = {
      authenticate: async () => {
        signIns += 1;
        return { id: 'cust-alice', name: 'Alice Example' };
      },
      findById: async () => undefined,
    };
    const cache = createInvalidatingCache<Customer | undefined>({ bus, topic: 'customer', maxEntries: 100, maxAgeMs: 1000, now: () => clock });
    const cached = cachedCustomerDirectory(plain, cache);
    await cached.authenticate('alice', 'alice-sandbox');
    await cached.authenticate('alice', 'alice-sandbox');
    expect(signIns).toBe(2);
    expect('record' in cached).toBe(false);
  });
});

import { createLoginThrottle } from '../../src/customers/login-throttle.ts';
import { createMemoryAttemptCounterStore } from '../../src/storage/embedded/memory-attempt-counter-store.ts';

/*
 * The per-address sign-in counter (credential stuffing across usernames) counts an IPv6 client by
 * its /64: the addresses of one network are one client (issue 14).
 */

const policy = { perAccount: { failures: 5, lockSeconds: 600 }, perAddress: { failures: 2, windowSeconds: 600, lockSeconds: 600 } };
const wrongPassword = () => Promise.resolve(undefined);

describe('the sign-in throttle per address', () => {
  it('locks an IPv6 /64 whatever address of it the next guess comes from', async () => {
    const throttle = createLoginThrottle(policy, createMemoryAttemptCounterStore());
    expect((await throttle.attempt('ann', '2001:db8:14:1::a', wrongPassword)).outcome).toBe('failed');
    expect(await throttle.attempt('bea', '2001:db8:14:1:ffff:ffff:ffff:fffe', wrongPassword)).toEqual({
      outcome: 'failed',
      locked: expect.objectContaining({ by: 'address' }),
    });
    expect(await throttle.attempt('cid', '2001:db8:14:1:1234::9', wrongPassword)).toEqual({
      outcome: 'refused',
      locked: expect.objectContaining({ by: 'address' }),
    });
    // Another network is another client.
    expect((await throttle.attempt('dot', '2001:db8:14:2::a', wrongPassword)).outcome).toBe('failed');
  });

  it('still counts IPv4 addresses one by one', async () => {
    const throttle = createLoginThrottle(policy, createMemoryAttemptCounterStore());
    await throttle.attempt('ann', '192.0.2.1', wrongPassword);
    await throttle.attempt('bea', '192.0.2.1', wrongPassword);
    expect((await throttle.attempt('cid', '192.0.2.2', wrongPassword)).outcome).toBe('failed');
  });
});

import { availableParallelism } from 'node:os';
import { DECOY_HASH, hashPassword, passwordHashing, PUBLIC_PASSWORD_PARAMS, verifyPassword } from '../../src/customers/password-hash.ts';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';

describe('password hashing', () => {
  it('verifies the password it hashed and no other', async () => {
    const encoded = await hashPassword('correct horse');
    expect(encoded).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(await verifyPassword('correct horse', encoded)).toBe(true);
    expect(await verifyPassword('correct horse.', encoded)).toBe(false);
    expect(await verifyPassword('correct horse', encoded.replace(/^scrypt/, 'bcrypt'))).toBe(false);
  });

  // Each scrypt holds 32 MiB while it runs: a burst of sign-ins runs one per core and queues the
  // rest, rather than all at once in libuv's pool (issue 20, memory).
  it('runs one scrypt per core at a time, whatever arrives at once', async () => {
    const encoded = await hashPassword('pw');
    const cores = availableParallelism();
    const checks = Array.from({ length: cores * 3 }, (_, i) => verifyPassword(i % 2 === 0 ? 'pw' : 'guess', encoded));
    expect(passwordHashing.slots).toBe(cores);
    expect([passwordHashing.running, passwordHashing.waiting]).toEqual([cores, cores * 2]);
    expect(await Promise.all(checks)).toEqual(Array.from({ length: cores * 3 }, (_, i) => i % 2 === 0));
    expect([passwordHashing.running, passwordHashing.waiting]).toEqual([0, 0]);
  });

  /** `scrypt$N$r$p`: the parameters a hash was made with. */
  const parametersOf = (encoded: string) => encoded.split('$').slice(0, 4).join('$');

  it("checks an unknown username's sign-in against a decoy with the parameters in use, which matches no password", async () => {
    const current = parametersOf(await hashPassword('x'));
    expect(parametersOf(DECOY_HASH)).toBe(current);
    // A digest as long as a real one's: the check does the same work.
    expect(DECOY_HASH).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(await verifyPassword('', DECOY_HASH)).toBe(false);
    expect(await verifyPassword('alice-sandbox', DECOY_HASH)).toBe(false);
  });

  it("keeps each sandbox customer's hash made from its public password at the public passwords' parameters, and only theirs", async () => {
    const { N, r, p } = PUBLIC_PASSWORD_PARAMS;
    for (const customer of SANDBOX_CUSTOMERS) {
      expect(parametersOf(customer.passwordHash)).toBe(`scrypt$${N}$${r}$${p}`);
      expect(await verifyPassword(customer.password, customer.passwordHash)).toBe(true);
      expect(await verifyPassword(`${customer.password}.`, customer.passwordHash)).toBe(false);
    }
    // A customer's password, by default, is hashed at the full cost.
    expect(parametersOf(await hashPassword('not public'))).toBe('scrypt$32768$8$1');
    expect(parametersOf(await hashPassword('alice-sandbox', PUBLIC_PASSWORD_PARAMS))).toBe(`scrypt$${N}$${r}$${p}`);
  });
});

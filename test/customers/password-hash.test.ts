import { availableParallelism } from 'node:os';
import { DECOY_HASH, hashPassword, isBelowCurrentCost, passwordHashing, PUBLIC_PASSWORD_PARAMS, verifyPassword } from '../../src/customers/password-hash.ts';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { createSqlCustomerDirectory } from '../../src/storage/sql/customer-directory.ts';
import type { SqlClient } from '../../src/storage/sql/sql-client.ts';
import { openMigratedPglite } from '../support/databases.ts';

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

describe('a stored hash it could not have written', () => {
  const real = hashPassword('correct horse', PUBLIC_PASSWORD_PARAMS);
  const withPart = async (index: number, value: string) => {
    const parts = (await real).split('$');
    parts[index] = value;
    return parts.join('$');
  };

  it('matches no password when its digest is empty or cut short (an empty one matched every password)', async () => {
    expect(await verifyPassword('anything', await withPart(5, ''))).toBe(false);
    expect(await verifyPassword('', await withPart(5, ''))).toBe(false);
    const digest = (await real).split('$')[5]!;
    // The first 15 bytes of the real digest: the right password's prefix, refused as too short.
    const cut = Buffer.from(digest, 'base64url').subarray(0, 15).toString('base64url');
    expect(await verifyPassword('correct horse', await withPart(5, cut))).toBe(false);
    expect(await verifyPassword('correct horse', await withPart(4, ''))).toBe(false);
  });

  it('answers false, never throws, for parameters out of range or not numbers', async () => {
    for (const [index, value] of [
      [1, 'x'],
      [1, '1000'], // not a power of two
      [1, '1'],
      [1, String(2 ** 22)], // 128·N·r beyond what one check may hold
      [1, '01024'],
      [2, '0'],
      [3, '-1'],
      [3, '1e3'],
    ] as const) {
      await expect(verifyPassword('correct horse', await withPart(index, value))).resolves.toBe(false);
    }
    await expect(verifyPassword('correct horse', `${await real}$extra`)).resolves.toBe(false);
    await expect(verifyPassword('correct horse', 'scrypt$1024$8$1')).resolves.toBe(false);
    // And the hash as written still verifies.
    expect(await verifyPassword('correct horse', await real)).toBe(true);
  });

  it("reads OWASP's N = 2^17, which a bank may bring with its customers' hashes", async () => {
    const strong = await hashPassword('correct horse', { N: 2 ** 17, r: 8, p: 1 });
    expect(await verifyPassword('correct horse', strong)).toBe(true);
    expect(await verifyPassword('correct horse!', strong)).toBe(false);
  });
});

describe('a sign-in against a customer row whose hash has no digest', () => {
  it('is refused by the customer directory, whatever the password', async () => {
    const db = await openMigratedPglite();
    try {
      const salt = Buffer.alloc(16, 7).toString('base64url');
      await db.sql.query("INSERT INTO customer (id, username, password_hash, name) VALUES ('cust-eve', 'eve', $1, 'Eve')", [`scrypt$1024$8$1$${salt}$`]);
      const customers = createSqlCustomerDirectory(db.sql);
      expect(await customers.authenticate('eve', 'anything at all')).toBeUndefined();
      expect(await customers.authenticate('eve', '')).toBeUndefined();
    } finally {
      await db.drop();
    }
  });
});

describe("a customer's hash cheaper than one made now", () => {
  const parametersOf = (encoded: string) => encoded.split('$').slice(0, 4).join('$');
  const storedHash = async (sql: SqlClient, id: string) =>
    (await sql.query<{ password_hash: string }>('SELECT password_hash FROM customer WHERE id = $1', [id])).rows[0]!.password_hash;

  it('is made again at the current cost at the next sign-in, never on a wrong password, and never for the demo customers', async () => {
    const db = await openMigratedPglite();
    try {
      const cheap = await hashPassword('legacy pass', PUBLIC_PASSWORD_PARAMS);
      await db.sql.query("INSERT INTO customer (id, username, password_hash, name) VALUES ('cust-leg', 'leg', $1, 'Legacy')", [cheap]);
      const demo = SANDBOX_CUSTOMERS[0];
      await db.sql.query('INSERT INTO customer (id, username, password_hash, name) VALUES ($1, $2, $3, $4)', [
        demo.id,
        demo.username,
        demo.passwordHash,
        demo.name,
      ]);
      const customers = createSqlCustomerDirectory(db.sql);

      expect(await customers.authenticate('leg', 'wrong')).toBeUndefined();
      expect(await storedHash(db.sql, 'cust-leg')).toBe(cheap);

      expect(await customers.authenticate('leg', 'legacy pass')).toEqual({ id: 'cust-leg', name: 'Legacy' });
      const remade = await storedHash(db.sql, 'cust-leg');
      expect(parametersOf(remade)).toBe('scrypt$32768$8$1');
      expect(await verifyPassword('legacy pass', remade)).toBe(true);
      expect(await customers.authenticate('leg', 'legacy pass')).toEqual({ id: 'cust-leg', name: 'Legacy' });
      expect(await storedHash(db.sql, 'cust-leg')).toBe(remade);

      expect(await customers.authenticate(demo.username, demo.password)).toEqual({ id: demo.id, name: demo.name });
      expect(await storedHash(db.sql, demo.id)).toBe(demo.passwordHash);
    } finally {
      await db.drop();
    }
  });

  it('is told apart by memory and work, not by each parameter', () => {
    expect(isBelowCurrentCost('scrypt$1024$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(true);
    expect(isBelowCurrentCost('scrypt$32768$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(false);
    expect(isBelowCurrentCost('scrypt$131072$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(false);
    // As much memory (128·N·r) and work with a smaller N and a larger r: not remade.
    expect(isBelowCurrentCost('scrypt$16384$16$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(false);
    // Less memory made up by parallel work is still less memory: remade.
    expect(isBelowCurrentCost('scrypt$16384$8$4$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(true);
    // An unreadable hash matches nothing, so it is never remade.
    expect(isBelowCurrentCost('scrypt$1024$8$1$AAAA$')).toBe(false);
  });
});

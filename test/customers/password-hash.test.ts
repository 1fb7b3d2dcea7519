import { randomBytes, scryptSync } from 'node:crypto';
import { availableParallelism } from 'node:os';
import {
  DECOY_HASH,
  decoyBesideFailedCheck,
  hashPassword,
  LEGACY_DECOY_HASH,
  needsRehash,
  passwordHashing,
  PUBLIC_PASSWORD_PARAMS,
  verifyPassword,
} from '../../src/customers/password-hash.ts';
import { SANDBOX_CUSTOMERS } from '../../src/customers/sandbox-customers.ts';
import { createSqlCustomerDirectory, legacyHashesRemain } from '../../src/storage/sql/customer-directory.ts';
import type { SqlClient } from '../../src/storage/sql/sql-client.ts';
import { openMigratedPglite } from '../support/databases.ts';

describe('password hashing', () => {
  it('verifies the password it hashed and no other', async () => {
    const encoded = await hashPassword('correct horse');
    // OWASP Password Storage Cheat Sheet: Argon2id, 19 MiB, 2 passes, 1 lane; a 16-byte salt, a 32-byte digest.
    expect(encoded).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await verifyPassword('correct horse', encoded)).toBe(true);
    expect(await verifyPassword('correct horse.', encoded)).toBe(false);
    expect(await verifyPassword('correct horse', encoded.replace(/^\$argon2id/, '$argon2d'))).toBe(false);
    expect(await verifyPassword('correct horse', encoded.replace(/^\$argon2id/, '$argon2i'))).toBe(false);
  });

  // Made by libargon2, the reference implementation (Debian's argon2 command:
  // `echo -n 'correct horse battery staple' | argon2 moat-interop-salt -id -t 2 -m 15 -l 32 -e`):
  // a bank's customers' hashes from another stack are read as they are.
  it('reads the PHC strings the reference implementation writes: Argon2id and Argon2i, one lane or several', async () => {
    const password = 'correct horse battery staple';
    for (const made of [
      '$argon2id$v=19$m=32768,t=2,p=1$bW9hdC1pbnRlcm9wLXNhbHQ$FJtOAFINXEzaCXgIrT1Q32xrEJEDLwmSczRs9/+YFHw',
      '$argon2id$v=19$m=47104,t=1,p=4$bW9hdC1pbnRlcm9wLXNhbHQ$PH8OaKCwmXC8/F5UnOwhFd7YooFBxmP3wLarM0K5c9Y',
      '$argon2i$v=19$m=12288,t=3,p=1$bW9hdC1pbnRlcm9wLXNhbHQ$NxZctW60pSrLnxqPa8PBG0zWuXtugVi3fr/zWGKvGmw',
    ]) {
      expect(await verifyPassword(password, made)).toBe(true);
      expect(await verifyPassword(`${password}!`, made)).toBe(false);
    }
    // Argon2d (not meant for passwords, RFC 9106 §4) and version 0x10 (which Node does not compute):
    // each the right password's own hash, and neither read.
    expect(await verifyPassword(password, '$argon2d$v=19$m=19456,t=2,p=1$bW9hdC1pbnRlcm9wLXNhbHQ$w1nxjjKbrzbbqhK/1LsSHBg9vVzt9462f8FPHftsRKM')).toBe(false);
    expect(await verifyPassword(password, '$argon2id$v=16$m=19456,t=2,p=1$bW9hdC1pbnRlcm9wLXNhbHQ$dp4SIUhA/p4q939x7bpHvPKyjY8kFJWRxafZVqECfwk')).toBe(false);
  });

  // Moat's hashes before Argon2id: still read, made again at the next sign-in (below).
  it('still reads the scrypt hashes it wrote before', async () => {
    const written = 'scrypt$1024$8$1$7LOIjJf-5fAgG6vV4XKGCg$wn_-uplnWAkywATytKWfe4_S7v6-eqiWBAniA9lKLi8';
    expect(await verifyPassword('alice-sandbox', written)).toBe(true);
    expect(await verifyPassword('alice-sandbox.', written)).toBe(false);
    expect(await verifyPassword('alice-sandbox', written.replace(/^scrypt/, 'bcrypt'))).toBe(false);
  });

  // Each check holds 19 MiB while it runs: a burst of sign-ins runs one per core and queues the
  // rest, rather than all at once in libuv's pool (issue 20, memory).
  it('runs one check per core at a time, whatever arrives at once', async () => {
    const encoded = await hashPassword('pw');
    const cores = availableParallelism();
    const checks = Array.from({ length: cores * 3 }, (_, i) => verifyPassword(i % 2 === 0 ? 'pw' : 'guess', encoded));
    expect(passwordHashing.slots).toBe(cores);
    expect([passwordHashing.running, passwordHashing.waiting]).toEqual([cores, cores * 2]);
    expect(await Promise.all(checks)).toEqual(Array.from({ length: cores * 3 }, (_, i) => i % 2 === 0));
    expect([passwordHashing.running, passwordHashing.waiting]).toEqual([0, 0]);
  });

  /** `$argon2id$v=19$m=…,t=…,p=…`: the scheme and parameters a hash was made with. */
  const parametersOf = (encoded: string) => encoded.split('$').slice(0, 4).join('$');
  const { memoryKiB, passes, parallelism } = PUBLIC_PASSWORD_PARAMS;
  const publicParameters = `$argon2id$v=19$m=${memoryKiB},t=${passes},p=${parallelism}`;

  it("checks an unknown username's sign-in against a decoy with the parameters in use, which matches no password", async () => {
    const current = parametersOf(await hashPassword('x'));
    expect(parametersOf(DECOY_HASH)).toBe(current);
    // A digest as long as a real one's: the check does the same work.
    expect(DECOY_HASH).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await verifyPassword('', DECOY_HASH)).toBe(false);
    expect(await verifyPassword('alice-sandbox', DECOY_HASH)).toBe(false);
  });

  it("keeps each sandbox customer's hash made from its public password at the public passwords' parameters, and only theirs", async () => {
    for (const customer of SANDBOX_CUSTOMERS) {
      expect(parametersOf(customer.passwordHash)).toBe(publicParameters);
      expect(await verifyPassword(customer.password, customer.passwordHash)).toBe(true);
      expect(await verifyPassword(`${customer.password}.`, customer.passwordHash)).toBe(false);
    }
    // A customer's password, by default, is hashed at the full cost.
    expect(parametersOf(await hashPassword('not public'))).toBe('$argon2id$v=19$m=19456,t=2,p=1');
    expect(parametersOf(await hashPassword('alice-sandbox', PUBLIC_PASSWORD_PARAMS))).toBe(publicParameters);
  });
});

describe('a stored hash it could not have written', () => {
  const real = hashPassword('correct horse', PUBLIC_PASSWORD_PARAMS);
  const withPart = async (index: number, value: string, encoded?: string) => {
    const parts = (encoded ?? (await real)).split('$');
    parts[index] = value;
    return parts.join('$');
  };

  it('matches no password when its digest is empty or cut short (an empty one matched every password)', async () => {
    expect(await verifyPassword('anything', await withPart(5, ''))).toBe(false);
    expect(await verifyPassword('', await withPart(5, ''))).toBe(false);
    const digest = (await real).split('$')[5]!;
    // The first 15 bytes of the real digest: the right password's prefix, refused as too short.
    const cut = Buffer.from(digest, 'base64').subarray(0, 15).toString('base64').replace(/=+$/, '');
    expect(await verifyPassword('correct horse', await withPart(5, cut))).toBe(false);
    expect(await verifyPassword('correct horse', await withPart(4, ''))).toBe(false);
    // PHC's base64 has no padding and the standard alphabet only.
    expect(await verifyPassword('correct horse', await withPart(5, `${digest}=`))).toBe(false);
    const made = '$argon2id$v=19$m=32768,t=2,p=1$bW9hdC1pbnRlcm9wLXNhbHQ$FJtOAFINXEzaCXgIrT1Q32xrEJEDLwmSczRs9/+YFHw';
    expect(await verifyPassword('correct horse battery staple', made.replace('/+', '_-'))).toBe(false);
  });

  it('answers false, never throws, for Argon2 parameters out of range or not numbers', async () => {
    for (const [index, value] of [
      [1, 'argon2d'],
      [1, 'Argon2id'],
      [2, 'v=16'],
      [2, 'v=019'],
      [3, 'm=7,t=1,p=1'], // less than 8 KiB per lane
      [3, 'm=64,t=1,p=9'],
      [3, `m=${256 * 1024 + 1},t=1,p=1`], // more than one check may hold
      [3, 'm=1024,t=0,p=1'],
      [3, 'm=1024,t=17,p=1'],
      [3, 'm=1024,t=1,p=0'],
      [3, 'm=1024,t=1,p=17'],
      [3, 'm=01024,t=1,p=1'],
      [3, 'm=1e3,t=1,p=1'],
      [3, 't=1,m=1024,p=1'],
      [3, 'm=1024,t=1'],
    ] as const) {
      await expect(verifyPassword('correct horse', await withPart(index, value))).resolves.toBe(false);
    }
    await expect(verifyPassword('correct horse', `${await real}$extra`)).resolves.toBe(false);
    await expect(verifyPassword('correct horse', ' ' + (await real))).resolves.toBe(false);
    await expect(verifyPassword('correct horse', '$argon2id$v=19$m=1024,t=1,p=1')).resolves.toBe(false);
    // And the hash as written still verifies.
    expect(await verifyPassword('correct horse', await real)).toBe(true);
  });

  it('answers false, never throws, for scrypt parameters out of range or not numbers', async () => {
    const written = 'scrypt$1024$8$1$7LOIjJf-5fAgG6vV4XKGCg$wn_-uplnWAkywATytKWfe4_S7v6-eqiWBAniA9lKLi8';
    for (const [index, value] of [
      [1, 'x'],
      [1, '1000'], // not a power of two
      [1, '1'],
      [1, String(2 ** 22)], // 128·N·r beyond what one check may hold
      [1, '01024'],
      [2, '0'],
      [3, '-1'],
      [3, '1e3'],
      [5, ''],
    ] as const) {
      await expect(verifyPassword('alice-sandbox', await withPart(index, value, written))).resolves.toBe(false);
    }
    await expect(verifyPassword('alice-sandbox', `${written}$extra`)).resolves.toBe(false);
    await expect(verifyPassword('alice-sandbox', 'scrypt$1024$8$1')).resolves.toBe(false);
    expect(await verifyPassword('alice-sandbox', written)).toBe(true);
  });

  it("reads OWASP's scrypt at N = 2^17 and Argon2id at 46 MiB, which a bank may bring with its customers' hashes", async () => {
    const salt = randomBytes(16);
    const digest = scryptSync('correct horse', salt, 32, { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * 1024 * 1024 });
    const scrypt = ['scrypt', 2 ** 17, 8, 1, salt.toString('base64url'), digest.toString('base64url')].join('$');
    const argon = await hashPassword('correct horse', { memoryKiB: 46 * 1024, passes: 1, parallelism: 1 });
    for (const strong of [scrypt, argon]) {
      expect(await verifyPassword('correct horse', strong)).toBe(true);
      expect(await verifyPassword('correct horse!', strong)).toBe(false);
    }
  });
});

describe('a sign-in against a customer row whose hash has no digest', () => {
  it('is refused by the customer directory, whatever the password', async () => {
    const db = await openMigratedPglite();
    try {
      const salt = Buffer.alloc(16, 7);
      await db.sql.query("INSERT INTO customer (id, username, password_hash, name) VALUES ('cust-eve', 'eve', $1, 'Eve'), ('cust-eva', 'eva', $2, 'Eva')", [
        `scrypt$1024$8$1$${salt.toString('base64url')}$`,
        `$argon2id$v=19$m=1024,t=1,p=1$${salt.toString('base64').replace(/=+$/, '')}$`,
      ]);
      const customers = createSqlCustomerDirectory(db.sql);
      for (const username of ['eve', 'eva']) {
        expect(await customers.authenticate(username, 'anything at all')).toBeUndefined();
        expect(await customers.authenticate(username, '')).toBeUndefined();
      }
    } finally {
      await db.drop();
    }
  });
});

describe("a customer's hash of another scheme, or cheaper than one made now", () => {
  const parametersOf = (encoded: string) => encoded.split('$').slice(0, 4).join('$');
  const storedHash = async (sql: SqlClient, id: string) =>
    (await sql.query<{ password_hash: string }>('SELECT password_hash FROM customer WHERE id = $1', [id])).rows[0]!.password_hash;
  /** alice-sandbox's hash as Moat wrote it before Argon2id. */
  const legacyScrypt = 'scrypt$1024$8$1$7LOIjJf-5fAgG6vV4XKGCg$wn_-uplnWAkywATytKWfe4_S7v6-eqiWBAniA9lKLi8';

  it('is made again as Argon2id at the current cost at the next sign-in, never on a wrong password, and never for the demo customers', async () => {
    const db = await openMigratedPglite();
    try {
      const cheap = await hashPassword('legacy pass', PUBLIC_PASSWORD_PARAMS);
      await db.sql.query("INSERT INTO customer (id, username, password_hash, name) VALUES ('cust-leg', 'leg', $1, 'Legacy'), ('cust-old', 'old', $2, 'Old')", [
        cheap,
        legacyScrypt,
      ]);
      const demo = SANDBOX_CUSTOMERS[0];
      await db.sql.query('INSERT INTO customer (id, username, password_hash, name) VALUES ($1, $2, $3, $4)', [
        demo.id,
        demo.username,
        demo.passwordHash,
        demo.name,
      ]);
      const customers = createSqlCustomerDirectory(db.sql);

      for (const [username, id, password, before] of [
        ['leg', 'cust-leg', 'legacy pass', cheap],
        ['old', 'cust-old', 'alice-sandbox', legacyScrypt],
      ] as const) {
        expect(await customers.authenticate(username, 'wrong')).toBeUndefined();
        expect(await storedHash(db.sql, id)).toBe(before);

        expect(await customers.authenticate(username, password)).toMatchObject({ id });
        const remade = await storedHash(db.sql, id);
        expect(parametersOf(remade)).toBe('$argon2id$v=19$m=19456,t=2,p=1');
        expect(await verifyPassword(password, remade)).toBe(true);
        expect(await customers.authenticate(username, password)).toMatchObject({ id });
        expect(await storedHash(db.sql, id)).toBe(remade);
      }

      expect(await customers.authenticate(demo.username, demo.password)).toEqual({ id: demo.id, name: demo.name });
      expect(await storedHash(db.sql, demo.id)).toBe(demo.passwordHash);
    } finally {
      await db.drop();
    }
  });

  it('is told apart by scheme, then by memory and work, not by each parameter', () => {
    const salt = 'AAAAAAAAAAAAAAAAAAAAAA';
    const digest = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const argon2 = (variant: string, m: number, t: number, p: number) => `$${variant}$v=19$m=${m},t=${t},p=${p}$${salt}$${digest}`;
    expect(needsRehash(argon2('argon2id', 19456, 2, 1))).toBe(false);
    expect(needsRehash(argon2('argon2id', 1024, 1, 1))).toBe(true);
    // OWASP's other rows of equal strength with more memory: not remade.
    expect(needsRehash(argon2('argon2id', 47104, 1, 1))).toBe(false);
    expect(needsRehash(argon2('argon2id', 19456, 2, 4))).toBe(false);
    // Less memory made up by more passes is still less memory: remade.
    expect(needsRehash(argon2('argon2id', 12288, 3, 1))).toBe(true);
    expect(needsRehash(argon2('argon2id', 19456, 1, 1))).toBe(true);
    // Another variant or scheme, however costly: remade as Argon2id.
    expect(needsRehash(argon2('argon2i', 65536, 3, 1))).toBe(true);
    expect(needsRehash('scrypt$131072$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(true);
    expect(needsRehash(legacyScrypt)).toBe(true);
    // An unreadable hash matches nothing, so it is never remade.
    expect(needsRehash('scrypt$1024$8$1$AAAA$')).toBe(false);
    expect(needsRehash(argon2('argon2d', 1024, 1, 1))).toBe(false);
    expect(needsRehash(`$argon2id$v=19$m=1024,t=1,p=1$${salt}$`)).toBe(false);
  });
});

// While scrypt hashes remain, a failed check must not cost what the stored hash costs: scrypt at
// N = 2^15 takes about three times an Argon2id check, which would tell a dormant customer's
// username from an unknown one.
describe('a failed sign-in while customers still hold scrypt hashes', () => {
  const schemeOf = (encoded: string) => (encoded.startsWith('$argon2id$') ? 'argon2id' : encoded.split('$')[0]);

  it('runs one scrypt and one Argon2id at full cost, whoever the username names', async () => {
    const current = await hashPassword('x');
    const legacy = 'scrypt$32768$8$1$7LOIjJf-5fAgG6vV4XKGCg$wn_-uplnWAkywATytKWfe4_S7v6-eqiWBAniA9lKLi8';
    // What a failure computes: the stored hash (or the decoy for an unknown username), then the one beside it.
    const work = (stored: string | undefined) => [schemeOf(stored ?? DECOY_HASH), schemeOf(decoyBesideFailedCheck(stored))].sort();
    for (const stored of [undefined, current, legacy]) expect(work(stored)).toEqual(['argon2id', 'scrypt']);
    // Each decoy at the parameters of the hashes it stands beside, and matching no password.
    expect(LEGACY_DECOY_HASH).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(await verifyPassword('', LEGACY_DECOY_HASH)).toBe(false);
  });

  it('is told by the customer table, not counting the demo customers, and sign-ins still answer right', async () => {
    const db = await openMigratedPglite();
    try {
      const demo = SANDBOX_CUSTOMERS[0];
      await db.sql.query('INSERT INTO customer (id, username, password_hash, name) VALUES ($1, $2, $3, $4)', [
        demo.id,
        demo.username,
        LEGACY_DECOY_HASH,
        demo.name,
      ]);
      await db.sql.query("INSERT INTO customer (id, username, password_hash, name) VALUES ('cust-new', 'new', $1, 'New')", [await hashPassword('new pass')]);
      expect(await legacyHashesRemain(db.sql)).toBe(false);
      const legacy = 'scrypt$1024$8$1$7LOIjJf-5fAgG6vV4XKGCg$wn_-uplnWAkywATytKWfe4_S7v6-eqiWBAniA9lKLi8';
      await db.sql.query("INSERT INTO customer (id, username, password_hash, name) VALUES ('cust-old', 'old', $1, 'Old')", [legacy]);
      expect(await legacyHashesRemain(db.sql)).toBe(true);

      const customers = createSqlCustomerDirectory(db.sql);
      expect(await customers.authenticate('nobody', 'x')).toBeUndefined();
      expect(await customers.authenticate('new', 'wrong')).toBeUndefined();
      expect(await customers.authenticate('old', 'wrong')).toBeUndefined();
      expect(await customers.authenticate('new', 'new pass')).toMatchObject({ id: 'cust-new' });
      expect(await customers.authenticate('old', 'alice-sandbox')).toMatchObject({ id: 'cust-old' });
      // Made again as Argon2id at that sign-in: none remain.
      expect(await legacyHashesRemain(db.sql)).toBe(false);
    } finally {
      await db.drop();
    }
  });
});

import { containsNul } from './postgres-model-store.ts';
import type { SqlClient } from './sql-client.ts';
import type { Customer, CustomerDirectory } from '../../customers/customer-directory.ts';
import { DECOY_HASH, decoyBesideFailedCheck, hashPassword, needsRehash, verifyPassword } from '../../customers/password-hash.ts';
import { SANDBOX_CUSTOMERS } from '../../customers/sandbox-customers.ts';

interface CustomerRow {
  id: string;
  name: string;
  password_hash: string;
}

const SANDBOX_CUSTOMER_IDS: ReadonlySet<string> = new Set(SANDBOX_CUSTOMERS.map((c) => c.id));

/** How long a "scrypt hashes remain" answer is believed: a bank may import more at any time. */
const LEGACY_CHECK_MS = 60_000;

/** Whether any customer but the sandbox's demo ones still holds a scrypt hash (password-hash.ts). */
export async function legacyHashesRemain(sql: SqlClient): Promise<boolean> {
  const { rows } = await sql.query<{ remain: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM customer WHERE password_hash LIKE 'scrypt$%' AND NOT (id = ANY($1::text[]))) AS remain",
    [[...SANDBOX_CUSTOMER_IDS]],
  );
  return rows[0]?.remain === true;
}

export function createSqlCustomerDirectory(sql: SqlClient): CustomerDirectory {
  let legacy: { remain: boolean; checkedAt: number } | undefined;
  const legacyRemain = async () => {
    if (legacy === undefined || Date.now() - legacy.checkedAt > LEGACY_CHECK_MS) legacy = { remain: await legacyHashesRemain(sql), checkedAt: Date.now() };
    return legacy.remain;
  };
  /** A failed check's second half while scrypt hashes remain (decoyBesideFailedCheck says why). */
  const equalizeFailure = async (password: string, stored: string | undefined) => {
    if (await legacyRemain()) await verifyPassword(password, decoyBesideFailedCheck(stored));
  };
  return {
    async authenticate(username, password) {
      if (containsNul(username)) {
        await verifyPassword(password, DECOY_HASH);
        await equalizeFailure(password, undefined);
        return undefined;
      }
      const { rows } = await sql.query<CustomerRow>('SELECT id, name, password_hash FROM customer WHERE username = $1', [username]);
      const row = rows[0];
      const ok = await verifyPassword(password, row?.password_hash ?? DECOY_HASH);
      if (!ok || row === undefined) {
        await equalizeFailure(password, row?.password_hash);
        return undefined;
      }
      // A hash of another scheme or cheaper than one made now is made again while the password is at
      // hand; only if the row still holds the one just checked (a password changed meanwhile wins).
      // The sandbox's demo customers keep their cheap hashes: their passwords are public (password-hash.ts).
      if (needsRehash(row.password_hash) && !SANDBOX_CUSTOMER_IDS.has(row.id)) {
        await sql.query('UPDATE customer SET password_hash = $1 WHERE id = $2 AND password_hash = $3', [
          await hashPassword(password),
          row.id,
          row.password_hash,
        ]);
      }
      return { id: row.id, name: row.name };
    },
    async findById(id) {
      if (containsNul(id)) return undefined;
      const { rows } = await sql.query<Customer>('SELECT id, name FROM customer WHERE id = $1', [id]);
      return rows[0];
    },
  };
}

/** Adds the sandbox demo customers the `customer` table does not have yet. */
export async function seedSandboxCustomers(sql: SqlClient): Promise<void> {
  for (const c of SANDBOX_CUSTOMERS) {
    const { rows } = await sql.query<{ id: string }>('SELECT id FROM customer WHERE id = $1', [c.id]);
    if (rows.length > 0) continue;
    await sql.query('INSERT INTO customer (id, username, password_hash, name) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
      c.id,
      c.username,
      c.passwordHash,
      c.name,
    ]);
  }
}

/** The usernames of the sandbox demo customers the `customer` table holds (a production start refuses them). */
export async function sandboxCustomersPresent(sql: SqlClient): Promise<string[]> {
  const ids = SANDBOX_CUSTOMERS.map((c) => c.id);
  const { rows } = await sql.query<{ username: string }>(
    `SELECT username FROM customer WHERE id IN (${ids.map((_, i) => `$${i + 1}`).join(', ')}) ORDER BY username`,
    ids,
  );
  return rows.map((row) => row.username);
}

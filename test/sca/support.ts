import { join } from 'node:path';
import { hashPassword } from '../../src/customers/password-hash.ts';
import { createSecretBox, loadEncryptionKey, TOTP_KEY_FILE, type SecretBox } from '../../src/sca/secret-box.ts';
import { createSqlTotpStore } from '../../src/storage/sql/totp-store.ts';
import { newTotpSecret } from '../../src/sca/totp.ts';
import type { Harness } from '../support/moat-harness.ts';

/*
 * Customers for SCA tests beyond the sandbox's two demo customers (whose published codes may be
 * reused, see src/sca/totp-factor.ts): created in the server's own database, with or without an
 * authenticator app.
 */

export interface TestCustomer {
  id: string;
  username: string;
  password: string;
  totpSecret?: string;
}

/** The box the running server seals secrets with (the sandbox key it generated under keys/). */
export function serverSecretBox(h: Harness): SecretBox {
  return createSecretBox(loadEncryptionKey({ generateAt: join(h.config.keys.dir, TOTP_KEY_FILE) }));
}

export async function createCustomer(h: Harness, name: string, options: { totp?: boolean } = {}): Promise<TestCustomer> {
  const customer: TestCustomer = { id: `cust-${name}`, username: name, password: `${name}-password-7Q` };
  await h.moat.storage.sql.query('INSERT INTO customer (id, username, password_hash, name) VALUES ($1, $2, $3, $4)', [
    customer.id,
    customer.username,
    await hashPassword(customer.password),
    `${name[0]!.toUpperCase()}${name.slice(1)} Test`,
  ]);
  if (options.totp === true) {
    const secret = newTotpSecret();
    const store = createSqlTotpStore(h.moat.storage.sql);
    await store.savePending(customer.id, serverSecretBox(h).seal(secret, customer.id));
    await store.confirm(customer.id, new Date());
    customer.totpSecret = secret;
  }
  return customer;
}

/** Sandbox demo customers: listed in the README and printed at start in sandbox mode. */
export const SANDBOX_CUSTOMERS = [
  // totpSecret: each has an authenticator app (RFC 6238, base32) set up, so a TPP's CI computes the
  // second factor with any TOTP library (src/sca/sandbox-factors.ts enrols it).
  // passwordHash: the password's Argon2id hash at PUBLIC_PASSWORD_PARAMS (src/customers/password-hash.ts),
  // made once and kept here. The passwords are public, so a costly hash protects nothing: hashing
  // them at every sandbox start cost two full-cost hashes, and checking them at the customers'
  // parameters cost each sandbox sign-in a full one. test/customers/password-hash.test.ts checks each
  // against its password; the benchmark gives alice a customer's parameters (bench/servers/moat-server.ts).
  {
    id: 'cust-alice',
    username: 'alice',
    password: 'alice-sandbox',
    passwordHash: '$argon2id$v=19$m=1024,t=1,p=1$pqnOWWS5sjVlOk7nc8M3aw$18ahQPbgYQ2/3TLUQoBsHBkk8epKSvFQdetUdG5dzn0',
    name: 'Alice Example',
    totpSecret: 'MOATSANDBOXALICETOTPSECRET234567',
  },
  {
    id: 'cust-bob',
    username: 'bob',
    password: 'bob-sandbox',
    passwordHash: '$argon2id$v=19$m=1024,t=1,p=1$OQUL8BX1m/8APzKnarwgjg$0s+E8gPtrsd/8n+7wTqz6OWKVnkSaXEYpqft/UnB6Io',
    name: 'Bob Example',
    totpSecret: 'MOATSANDBOXBOBTOTPSECRET23456722',
  },
] as const;

/**
 * A production Moat on a database the sandbox seeded: the demo customers' passwords and one-time code
 * secrets are public (the README, the sign-in page and `moat start` print them), so anyone could
 * sign in as them and consent on their behalf. Production refuses to start rather than serve them.
 */
export class SandboxCustomersInProduction extends Error {
  readonly usernames: readonly string[];
  constructor(usernames: readonly string[]) {
    super(
      `the database holds the sandbox's demo customers (${usernames.join(', ')}), whose passwords are public; ` +
        `production refuses to start on it: delete them (DELETE FROM customer WHERE id IN (${SANDBOX_CUSTOMERS.map((c) => `'${c.id}'`).join(', ')})) ` +
        'or use a database the sandbox never ran on',
    );
    this.name = 'SandboxCustomersInProduction';
    this.usernames = usernames;
  }
}

/** Sandbox demo customers: listed in the README and printed at start in sandbox mode. */
export const SANDBOX_CUSTOMERS = [
  // totpSecret: each has an authenticator app (RFC 6238, base32) set up, so a TPP's CI computes the
  // second factor with any TOTP library (src/sca/sandbox-factors.ts enrols it).
  // passwordHash: the password's scrypt hash (src/customers/password-hash.ts), made once and kept
  // here: the passwords are public, and hashing them at every sandbox start cost two scrypts
  // (~0.33 s of a core). test/customers/password-hash.test.ts checks each against its password and
  // the parameters in use.
  {
    id: 'cust-alice',
    username: 'alice',
    password: 'alice-sandbox',
    passwordHash: 'scrypt$32768$8$1$u_Z0WzAA6zLKrFIN2hlNyg$7POQl8Qzwxr97bNGO_mzU7tDXuPxN6Wj2aLs1_jf4u4',
    name: 'Alice Example',
    totpSecret: 'MOATSANDBOXALICETOTPSECRET234567',
  },
  {
    id: 'cust-bob',
    username: 'bob',
    password: 'bob-sandbox',
    passwordHash: 'scrypt$32768$8$1$RHMWOIrWCDmX26W1E79r6w$vfHzEbFMIogMZttqd55DiAtsYS537PqTY9P4JBBun9Y',
    name: 'Bob Example',
    totpSecret: 'MOATSANDBOXBOBTOTPSECRET23456722',
  },
] as const;

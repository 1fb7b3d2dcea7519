/** Sandbox demo customers: listed in the README and printed at start in sandbox mode. */
export const SANDBOX_CUSTOMERS = [
  // totpSecret: each has an authenticator app (RFC 6238, base32) set up, so a TPP's CI computes the
  // second factor with any TOTP library (src/sca/sandbox-factors.ts enrols it).
  { id: 'cust-alice', username: 'alice', password: 'alice-sandbox', name: 'Alice Example', totpSecret: 'MOATSANDBOXALICETOTPSECRET234567' },
  { id: 'cust-bob', username: 'bob', password: 'bob-sandbox', name: 'Bob Example', totpSecret: 'MOATSANDBOXBOBTOTPSECRET23456722' },
] as const;

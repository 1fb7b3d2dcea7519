import { Secret, TOTP } from 'otpauth';

/*
 * RFC 6238 time-based one-time codes: six digits, SHA-1, 30-second steps — what every
 * authenticator app computes by default. The arithmetic is otpauth's; Moat decides which codes it
 * accepts: one time step either side of now (§5.2, clock drift and typing time), and each step
 * once (claimed in storage, see TotpStore.claimTimeStep).
 */

export const TOTP_DIGITS = 6;
export const TOTP_PERIOD_SECONDS = 30;

/** A new 160-bit secret (RFC 4226 §4 recommends 160 bits), base32 as authenticator apps take it. */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

/** The otpauth:// URI an authenticator app scans (Key Uri Format), for a QR code or a link. */
export function totpUri(secret: string, issuer: string, account: string): string {
  return new TOTP({ issuer, label: account, secret: Secret.fromBase32(secret), digits: TOTP_DIGITS, period: TOTP_PERIOD_SECONDS }).toString();
}

/** The code for `secret` at `at`: what an authenticator app shows (tests and the sandbox's README use the same). */
export function totpCode(secret: string, at: Date): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), digits: TOTP_DIGITS, period: TOTP_PERIOD_SECONDS, timestamp: at.getTime() });
}

/** The time step the code belongs to, within `window` steps of `at`, or undefined for a wrong code. */
export function matchingTimeStep(secret: string, code: string, at: Date, window: number): number | undefined {
  const delta = TOTP.validate({
    token: code,
    secret: Secret.fromBase32(secret),
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    timestamp: at.getTime(),
    window,
  });
  if (delta === null) return undefined;
  return TOTP.counter({ period: TOTP_PERIOD_SECONDS, timestamp: at.getTime() }) + delta;
}

/**
 * What was typed, as a code, or why it cannot be one — said so the customer can correct it. `problem`
 * and `typedDigits` let a page say it in the customer's language; `message` is the English wording.
 */
export type CodeInput = { ok: true; code: string } | { ok: false; problem: CodeInputProblem; typedDigits: number; message: string };
export type CodeInputProblem = 'empty' | 'not_digits' | 'wrong_length';

export function readCode(typed: string | null | undefined): CodeInput {
  // Apps show "123 456": spaces and dashes the customer copies along are not part of the code.
  const code = (typed ?? '').replace(/[\s-]/g, '');
  if (code === '') return { ok: false, problem: 'empty', typedDigits: 0, message: `Enter the ${TOTP_DIGITS}-digit code from your authenticator app.` };
  if (!/^\d+$/.test(code))
    return { ok: false, problem: 'not_digits', typedDigits: code.length, message: `The code is ${TOTP_DIGITS} digits, with no letters or other characters.` };
  if (code.length !== TOTP_DIGITS)
    return {
      ok: false,
      problem: 'wrong_length',
      typedDigits: code.length,
      message: `The code is ${TOTP_DIGITS} digits; you entered ${code.length > 99 ? 'too many' : code.length}.`,
    };
  return { ok: true, code };
}

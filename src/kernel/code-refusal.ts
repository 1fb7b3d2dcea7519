/*
 * Why a one-time code (RFC 6238 TOTP) is refused, as sca/totp-factor.ts decides it: not a code at
 * all, not the code for now, a code already used in its time step, no factor to check it against,
 * or code entry paused after too many wrong ones. A page's status for each is in error-responses.ts
 * (CODE_REFUSAL_STATUS).
 */
export type CodeRefusalReason = 'malformed' | 'wrong' | 'used' | 'no_factor' | 'locked';

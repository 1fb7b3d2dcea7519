import { createHash } from 'node:crypto';
import type { AuditLog } from '../audit/audit-log.ts';
import { addressBucket } from '../tls/trusted-proxies.ts';
import { createAttemptThrottle, type AttemptCounterStore, type AttemptRule, type AttemptsLocked } from '../throttle/attempt-throttle.ts';
import type { SecretBox } from './secret-box.ts';
import { matchingTimeStep, newTotpSecret, readCode, totpUri, type CodeInputProblem } from './totp.ts';
import type { TotpStore } from './totp-store.ts';

/*
 * The one-time-code factor: enrolment, verification and removal. Verification is throttled like
 * passwords (src/throttle/attempt-throttle.ts): a slot is reserved before the code is looked at, so
 * fifty wrong codes sent at once get at most `failures` of them evaluated before the factor locks
 * for the customer. A right code whose time step was already used counts as a failure too — to an
 * attacker replaying a code it is one.
 */

export interface TotpPolicy {
  window: number;
  failures: number;
  lockSeconds: number;
  issuerLabel: string;
}

export type TotpStatus = 'none' | 'pending' | 'active';

export type CodeCheck =
  | { ok: true; timeStep: number }
  | { ok: false; reason: 'malformed'; problem: CodeInputProblem; typedDigits: number; message: string }
  | { ok: false; reason: 'wrong' | 'used' | 'no_factor'; message: string }
  | { ok: false; reason: 'locked'; message: string; retryAfterSeconds: number };

export interface TotpFactor {
  status(customerId: string): Promise<TotpStatus>;
  /** A fresh secret for the customer to add to an app; replaces a pending one, never an active one. */
  beginEnrolment(customerId: string, accountLabel: string): Promise<{ secret: string; uri: string } | { refused: 'already_active' }>;
  /** Confirms the pending enrolment with a code the app computed. */
  confirmEnrolment(customerId: string, typed: string | null, from: string): Promise<CodeCheck>;
  /** Checks a code at sign-in (an active factor only); each time step is accepted once. */
  verify(customerId: string, typed: string | null, from: string): Promise<CodeCheck>;
  remove(customerId: string, by: { actor: 'customer' | 'operator'; actorId: string; reason?: string }): Promise<boolean>;
}

const hashed = (value: string) => createHash('sha256').update(value).digest('base64url');

export function createTotpFactor(deps: {
  store: TotpStore;
  box: SecretBox;
  counters: AttemptCounterStore;
  policy: TotpPolicy;
  audit?: AuditLog;
  now?: () => Date;
  /**
   * Customers whose codes may be used again: the sandbox's demo customers only, whose secrets are
   * published so a TPP's CI can compute them and run many consents a minute. Anyone can compute
   * their codes, so refusing a replay would protect nothing and only slow the CI down.
   */
  codesReusableFor?: (customerId: string) => boolean;
}): TotpFactor {
  const { store, box, policy } = deps;
  const now = deps.now ?? (() => new Date());
  const throttle = createAttemptThrottle(deps.counters);
  // Consecutive wrong codes per customer; and per address, so one network cannot try a code on every customer.
  const perCustomer: AttemptRule = {
    name: 'totp-customer',
    limit: policy.failures,
    windowSeconds: 86400,
    lockSeconds: policy.lockSeconds,
    clearedBySuccess: true,
  };
  const perAddress: AttemptRule = {
    name: 'totp-address',
    limit: policy.failures * 10,
    windowSeconds: 900,
    lockSeconds: policy.lockSeconds,
    clearedBySuccess: false,
  };

  const check = async (customerId: string, typed: string | null, from: string, state: 'pending' | 'active'): Promise<CodeCheck> => {
    const input = readCode(typed);
    if (!input.ok) return { ok: false, reason: 'malformed', problem: input.problem, typedDigits: input.typedDigits, message: input.message };
    const stored = await store.find(customerId);
    if (stored === undefined || (state === 'active') !== (stored.confirmedAt !== undefined)) {
      return {
        ok: false,
        reason: 'no_factor',
        message:
          state === 'active' ? 'No authenticator app is set up for this customer.' : 'Start the set-up again: no authenticator app is waiting to be confirmed.',
      };
    }
    let used = false;
    const result = await throttle.attempt(
      [
        { rule: perAddress, key: hashed(addressBucket(from)) },
        { rule: perCustomer, key: hashed(customerId) },
      ],
      async () => {
        const step = matchingTimeStep(box.open(stored.sealedSecret, customerId), input.code, now(), policy.window);
        if (step === undefined) return undefined;
        if (deps.codesReusableFor?.(customerId) === true) return step;
        if (!(await store.claimTimeStep(customerId, step))) {
          used = true;
          return undefined;
        }
        return step;
      },
    );
    if (result.outcome === 'succeeded') return { ok: true, timeStep: result.value };
    const locked = result.outcome === 'refused' ? result.locked : result.locked;
    if (locked !== undefined) return lockedCheck(locked);
    return used
      ? { ok: false, reason: 'used', message: 'That code was already used. Wait for the next code and enter it.' }
      : { ok: false, reason: 'wrong', message: 'That code is not right. Check the time on your phone and enter the code shown now.' };
  };

  return {
    async status(customerId) {
      const stored = await store.find(customerId);
      return stored === undefined ? 'none' : stored.confirmedAt === undefined ? 'pending' : 'active';
    },
    async beginEnrolment(customerId, accountLabel) {
      const stored = await store.find(customerId);
      if (stored?.confirmedAt !== undefined) return { refused: 'already_active' };
      const secret = newTotpSecret();
      await store.savePending(customerId, box.seal(secret, customerId));
      return { secret, uri: totpUri(secret, policy.issuerLabel, accountLabel) };
    },
    async confirmEnrolment(customerId, typed, from) {
      const result = await check(customerId, typed, from, 'pending');
      if (result.ok && (await store.confirm(customerId, now()))) {
        await deps.audit?.record({ type: 'factor.enrolled', actor: 'customer', actorId: customerId, customerId, detail: { factor: 'totp' } });
      }
      return result;
    },
    verify: (customerId, typed, from) => check(customerId, typed, from, 'active'),
    async remove(customerId, by) {
      const removed = await store.remove(customerId);
      if (removed) {
        await deps.audit?.record({
          type: by.actor === 'operator' ? 'factor.reset' : 'factor.removed',
          actor: by.actor,
          actorId: by.actorId,
          customerId,
          detail: { factor: 'totp', ...(by.reason === undefined ? {} : { reason: by.reason }) },
        });
      }
      return removed;
    },
  };
}

function lockedCheck(locked: AttemptsLocked): CodeCheck {
  const minutes = Math.max(1, Math.ceil(locked.retryAfterSeconds / 60));
  return {
    ok: false,
    reason: 'locked',
    retryAfterSeconds: locked.retryAfterSeconds,
    message: `Too many incorrect codes. For your security, code entry is paused. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}, or contact the bank if this was not you.`,
  };
}

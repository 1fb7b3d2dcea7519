import type { CodeCheck } from '../sca/totp-factor.ts';
import type { PasskeyRefusal } from '../passkeys/passkey-ceremonies.ts';
import { TOTP_DIGITS } from '../sca/totp.ts';
import type { Translate } from './messages.ts';

/*
 * A refusal made in code (a wrong one-time code, a locked sign-in, a passkey response refused), said
 * to the customer in the page's language. The services keep an English message for logs and the
 * JSON APIs; pages say it from the catalogue by the refusal's code (views/locales: code.*,
 * signIn.*, passkey.refused.*).
 */

/** A sign-in the password step refused. */
export type SignInRefusal = { kind: 'incorrect' } | { kind: 'locked'; by: string; retryAfterSeconds: number };

function minutesOf(seconds: number): number {
  return Math.max(1, Math.ceil(seconds / 60));
}

export function signInRefusalText(t: Translate, refusal: SignInRefusal): string {
  if (refusal.kind === 'incorrect') return t('signIn.incorrect');
  const minutes = minutesOf(refusal.retryAfterSeconds);
  return t(refusal.by === 'account' ? 'signIn.locked.account' : 'signIn.locked.network', { minutes });
}

/** `state`: the code was for a set-up being confirmed (pending) or a factor in use (active). */
export function codeRefusalText(t: Translate, checked: Exclude<CodeCheck, { ok: true }>, state: 'active' | 'pending' = 'active'): string {
  switch (checked.reason) {
    case 'malformed':
      return checked.problem === 'empty'
        ? t('code.empty', { digits: TOTP_DIGITS })
        : checked.problem === 'not_digits'
          ? t('code.notDigits', { digits: TOTP_DIGITS })
          : checked.typedDigits > 99
            ? t('code.tooLong', { digits: TOTP_DIGITS })
            : t('code.wrongLength', { digits: TOTP_DIGITS, typed: checked.typedDigits });
    case 'no_factor':
      return t(state === 'active' ? 'code.noFactor' : 'code.noPending');
    case 'used':
      return t('code.used');
    case 'wrong':
      return t('code.wrong');
    case 'locked':
      return t('code.locked', { minutes: minutesOf(checked.retryAfterSeconds) });
  }
}

export function passkeyRefusalText(t: Translate, code: PasskeyRefusal): string {
  return t(`passkey.refused.${code}`);
}

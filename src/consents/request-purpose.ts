import { errors } from 'oidc-provider';

/*
 * Why the TPP asks, in its own words: the `purpose` authorization request parameter of OpenID
 * Connect for Identity Assurance 1.0 ("Requesting Verified Claims", purpose). RFC 9396 has no purpose
 * member in authorization_details and the UK OB and Open Finance Brasil intents carry none, so this
 * is the one standard place a TPP can put it. The spec bounds it to 3–300 characters, makes a request
 * outside them fail with invalid_request, asks the OP to show it on the consent screen and to escape
 * it (the views escape every value). Moat also refuses control characters: they cannot be shown, and a
 * line break or a bidirectional override would let the TPP's words pass for the bank's.
 */

export const PURPOSE_PARAM = 'purpose';

/** OpenID Connect for Identity Assurance 1.0: "MUST NOT be shorter than 3 characters and MUST NOT be longer than 300". */
export const PURPOSE_MIN_LENGTH = 3;
export const PURPOSE_MAX_LENGTH = 300;

// C0 and C1 controls, and the bidirectional embedding, override and isolate characters (Unicode UAX #9).
const UNSHOWABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/** Why `value` is not a purpose Moat can show, or undefined when it is one. */
export function purposeProblem(value: string): string | undefined {
  const length = [...value].length;
  if (length < PURPOSE_MIN_LENGTH || length > PURPOSE_MAX_LENGTH) {
    return `purpose must be ${PURPOSE_MIN_LENGTH} to ${PURPOSE_MAX_LENGTH} characters (it has ${length})`;
  }
  if (UNSHOWABLE.test(value)) return 'purpose must be plain text, without control or bidirectional formatting characters';
  return undefined;
}

/** oidc-provider `extraParams` validator: at PAR, the authorization endpoint and CIBA. */
export function purposeParam(): Record<string, (ctx: unknown, value: string | undefined) => void> {
  return {
    [PURPOSE_PARAM](_ctx, value) {
      if (value === undefined) return;
      const problem = purposeProblem(value);
      if (problem !== undefined) throw new errors.InvalidRequest(problem);
    },
  };
}

/** The purpose an authorization request carried (validated when it was pushed), if any. */
export function purposeOf(params: Record<string, unknown>): string | undefined {
  const value = params[PURPOSE_PARAM];
  return typeof value === 'string' && purposeProblem(value) === undefined ? value : undefined;
}

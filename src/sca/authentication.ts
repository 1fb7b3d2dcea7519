import { paymentLinkHash, type PaymentLink } from './dynamic-linking.ts';

/*
 * How a bank customer was authenticated, told truthfully. PSD2 strong customer authentication (RTS
 * on SCA, Commission Delegated Regulation (EU) 2018/389, Art. 4) is two elements from *different*
 * categories — knowledge, possession, inherence — so a password and a one-time code from an
 * enrolled device is SCA, two passwords are not. A passkey used with user verification (WebAuthn
 * Level 2 §6.2.3: the authenticator checked a PIN or biometric before signing) is possession plus
 * knowledge or inherence in one gesture, so alone it is SCA.
 *
 * `acr` says which of the two levels UK Open Banking and Brazil name was reached; `amr` lists the
 * methods in RFC 8176's vocabulary. Both go into the login result oidc-provider stores on the
 * session (and from there into the ID token and introspection), and onto the consent.
 */

/** UK OB / Brazil Open Finance: strong customer authentication was performed. */
export const ACR_SCA = 'urn:openbanking:psd2:sca';
/** Customer authentication that is not strong (one factor). */
export const ACR_CA = 'urn:openbanking:psd2:ca';
export const ACR_VALUES_SUPPORTED = [ACR_SCA, ACR_CA] as const;
export type Acr = (typeof ACR_VALUES_SUPPORTED)[number];

/** RTS Art. 6–8: the three categories of elements. */
export type FactorCategory = 'knowledge' | 'possession' | 'inherence';

/** RFC 8176 §2 method values Moat emits. */
export type AuthenticationMethod = 'pwd' | 'otp' | 'hwk' | 'swk' | 'user' | 'pin' | 'mfa';

/** One factor the customer presented in this authentication. */
export interface FactorUse {
  /** Moat's name for the factor, for audit and logs; `upstream` is a login at the bank's own IdP (customers.source: oidc). */
  kind: 'password' | 'totp' | 'passkey' | 'upstream';
  amr: AuthenticationMethod[];
  categories: FactorCategory[];
}

export function passwordFactor(): FactorUse {
  return { kind: 'password', amr: ['pwd'], categories: ['knowledge'] };
}

/** RFC 6238 code from an enrolled authenticator app: proves possession of the device holding the secret (RTS Art. 7). */
export function totpFactor(): FactorUse {
  return { kind: 'totp', amr: ['otp'], categories: ['possession'] };
}

/**
 * A WebAuthn assertion. `hwk` for a device-bound key, `swk` for a synced passkey (RFC 8176 §2:
 * proof-of-possession of a hardware- or software-secured key). With user verification the
 * authenticator checked a PIN or biometric — which of the two Moat cannot see, so it is recorded
 * as `user` and counted as the second category (knowledge or inherence, Art. 6 / Art. 8).
 */
export function passkeyFactor(options: { userVerified: boolean; deviceBound: boolean }): FactorUse {
  return {
    kind: 'passkey',
    amr: [options.deviceBound ? 'hwk' : 'swk', ...(options.userVerified ? ['user' as const] : [])],
    categories: options.userVerified ? ['possession', 'inherence'] : ['possession'],
  };
}

/** A finished customer authentication: what the session, the ID token and the consent record. */
export interface CustomerAuthentication {
  customerId: string;
  /** RFC 8176 methods, `mfa` included when more than one category was used. */
  amr: AuthenticationMethod[];
  /** The distinct RTS Art. 4 categories the factors covered. */
  categories: FactorCategory[];
  acr: Acr;
  authTime: Date;
  /** The payment this authentication was specific to (RTS Art. 5), if it was for one. */
  link?: PaymentLink;
  /** `paymentLinkHash(link)`, kept so records can be compared without re-deriving the link. */
  linkHash?: string;
}

/** Two independent elements from different categories (RTS Art. 4(1)). */
export function isStrong(factors: readonly FactorUse[]): boolean {
  return categoriesOf(factors).length >= 2;
}

export function acrOf(factors: readonly FactorUse[]): Acr {
  return isStrong(factors) ? ACR_SCA : ACR_CA;
}

/** RFC 8176 methods in the order used, without repeats, plus `mfa` for more than one category. */
export function amrOf(factors: readonly FactorUse[]): AuthenticationMethod[] {
  const methods = [...new Set(factors.flatMap((f) => f.amr))];
  return isStrong(factors) ? [...methods, 'mfa'] : methods;
}

function categoriesOf(factors: readonly FactorUse[]): FactorCategory[] {
  return [...new Set(factors.flatMap((f) => f.categories))];
}

/** The record of an authentication just completed with `factors`, linked to `link` when it was for a payment. */
export function completedAuthentication(input: {
  customerId: string;
  factors: readonly FactorUse[];
  authTime: Date;
  link?: PaymentLink;
}): CustomerAuthentication {
  if (input.factors.length === 0) throw new TypeError('an authentication needs at least one factor');
  return {
    customerId: input.customerId,
    amr: amrOf(input.factors),
    categories: categoriesOf(input.factors),
    acr: acrOf(input.factors),
    authTime: input.authTime,
    ...(input.link === undefined ? {} : { link: input.link, linkHash: paymentLinkHash(input.link) }),
  };
}

export function isStrongAuthentication(auth: Pick<CustomerAuthentication, 'acr' | 'categories'>): boolean {
  return auth.acr === ACR_SCA && auth.categories.length >= 2;
}

/** The key under which the authentication rides along in the interaction result (see `loginResult`). */
export const AUTHENTICATION_RESULT_KEY = 'moatAuthentication';

/** The authentication as it travels through oidc-provider's interaction (JSON: dates as epoch seconds). */
export interface AuthenticationResult {
  customerId: string;
  amr: AuthenticationMethod[];
  categories: FactorCategory[];
  acr: Acr;
  authTime: number;
  link?: PaymentLink;
  linkHash?: string;
}

/**
 * The result handed to `provider.interactionFinished`: oidc-provider's `login` (it puts acr, amr and
 * ts on the session, hence into the ID token and introspection), plus the full record under
 * AUTHENTICATION_RESULT_KEY, which oidc-provider carries to the consent prompt as `lastSubmission`
 * so the consent decision can check what the customer authenticated for.
 */
export function loginResult(auth: CustomerAuthentication): {
  login: { accountId: string; acr: Acr; amr: AuthenticationMethod[]; ts: number; remember: boolean };
  [AUTHENTICATION_RESULT_KEY]: AuthenticationResult;
} {
  const ts = Math.floor(auth.authTime.getTime() / 1000);
  return {
    // remember: false keeps the session to the browser's life; a payment needs a fresh SCA anyway.
    login: { accountId: auth.customerId, acr: auth.acr, amr: auth.amr, ts, remember: false },
    [AUTHENTICATION_RESULT_KEY]: {
      customerId: auth.customerId,
      amr: auth.amr,
      categories: auth.categories,
      acr: auth.acr,
      authTime: ts,
      ...(auth.link === undefined ? {} : { link: auth.link, linkHash: auth.linkHash }),
    },
  };
}

/** The authentication a finished login left in an interaction's `lastSubmission`, if it is one of ours. */
export function authenticationFromSubmission(lastSubmission: unknown): CustomerAuthentication | undefined {
  if (typeof lastSubmission !== 'object' || lastSubmission === null) return undefined;
  const carried = (lastSubmission as Record<string, unknown>)[AUTHENTICATION_RESULT_KEY] as AuthenticationResult | undefined;
  if (carried === undefined || typeof carried.customerId !== 'string' || typeof carried.authTime !== 'number') return undefined;
  return {
    customerId: carried.customerId,
    amr: carried.amr,
    categories: carried.categories,
    acr: carried.acr,
    authTime: new Date(carried.authTime * 1000),
    ...(carried.link === undefined ? {} : { link: carried.link, linkHash: carried.linkHash ?? paymentLinkHash(carried.link) }),
  };
}

/**
 * The authentication a login result reports without Moat's record: one performed elsewhere (the
 * bank's own identity provider, `customers.source: oidc`), whose `acr` the bank's mapping already
 * judged. Moat cannot see its factors, so their categories are taken from that judgement, and it is
 * linked to no payment (the upstream authentication never saw one).
 */
export function authenticationFromLogin(lastSubmission: unknown): CustomerAuthentication | undefined {
  const login = (lastSubmission as { login?: { accountId?: unknown; acr?: unknown; amr?: unknown; ts?: unknown } } | null | undefined)?.login;
  if (typeof login?.accountId !== 'string' || (login.acr !== ACR_SCA && login.acr !== ACR_CA)) return undefined;
  return {
    customerId: login.accountId,
    acr: login.acr,
    amr: Array.isArray(login.amr) ? login.amr.filter((m): m is AuthenticationMethod => typeof m === 'string') : [],
    categories: login.acr === ACR_SCA ? ['knowledge', 'possession'] : ['knowledge'],
    authTime: new Date((typeof login.ts === 'number' ? login.ts : Math.floor(Date.now() / 1000)) * 1000),
  };
}

/** What a consent records about how and when its customer was authenticated. */
export interface ConsentAuthentication {
  acr: Acr;
  amr: AuthenticationMethod[];
  authTime: Date;
  /** For a payment: the values the authentication was linked to, as the customer saw them (stored, not read back). */
  link?: PaymentLink;
  /** For a payment: the hash of those values. */
  linkHash?: string;
}

export function consentAuthentication(auth: CustomerAuthentication): ConsentAuthentication {
  return {
    acr: auth.acr,
    amr: auth.amr,
    authTime: auth.authTime,
    ...(auth.link === undefined ? {} : { link: auth.link, linkHash: auth.linkHash ?? paymentLinkHash(auth.link) }),
  };
}

import { claimsParameter } from '../http/claims-parameter.ts';
import { ACR_CA, ACR_SCA, ACR_VALUES_SUPPORTED, isStrongAuthentication, type Acr, type CustomerAuthentication } from './authentication.ts';
import { paymentLinkOf, sameLink, type PaymentLink, type PaymentValues } from './dynamic-linking.ts';

/*
 * Which authentication an authorization needs (RTS on SCA, Commission Delegated Regulation (EU)
 * 2018/389), decided from the request alone — no HTTP, no storage:
 * - a payment: strong, fresh (performed in this very interaction, never a remembered session) and
 *   linked to its amount and payee (Art. 4(1), Art. 5);
 * - account access: strong (Art. 4(1); Art. 10a governs how long it lasts, checked at refresh);
 * - the TPP asked for SCA with `acr_values` or an essential `acr` claim (OIDC Core §3.1.2.1,
 *   §5.5.1.1): strong, stepped up if the session is weaker; an essential `acr` Moat cannot give is
 *   answered with `unmet_authentication_requirements` (OpenID Connect Core Unmet Authentication
 *   Requirements 1.0), never silently less;
 * - threat detection stepped the client up: strong and fresh — a real second factor.
 * Sign-in for nothing but the customer's identity (openid, profile) needs only customer authentication.
 */

export type ScaReason = 'payment' | 'account_access' | 'requested_by_client' | 'threat_step_up';

export interface AuthenticationRequirement {
  acr: Acr;
  /** Must be performed in this interaction: a session's earlier authentication does not count. */
  fresh: boolean;
  /** The payment the authentication must be linked to (dynamic linking). */
  link?: PaymentLink;
  /** Why SCA is needed; empty when customer authentication suffices. */
  reasons: ScaReason[];
}

/** What the TPP asked about the authentication level, read from the request. */
export interface AcrRequest {
  values: string[];
  /** An essential `acr` claim (OIDC Core §5.5.1): Moat must meet one of the values or refuse. */
  essential: boolean;
}

/** No factor Moat offers (or the customer has enrolled) can meet what the TPP required. */
export class AuthenticationRequirementsUnmet extends Error {
  /** The standard error a TPP gets (OpenID Connect Core Unmet Authentication Requirements 1.0 §2). */
  readonly error = 'unmet_authentication_requirements';
  constructor(message: string) {
    super(message);
    this.name = 'AuthenticationRequirementsUnmet';
  }
}

/** Scopes that reveal only who the customer is; everything else reaches the bank's data. */
const IDENTITY_SCOPES = new Set(['openid', 'profile', 'offline_access']);

export interface AuthorizationRequestFacts {
  /** The consent's detail (RAR or the lodged intent), if any: its type, and a payment's values. */
  detail?: { type: 'account_information' } | ({ type: 'payment_initiation' } & PaymentValues);
  /** The id the consent has, or will have, for a payment's link. */
  consentId?: string;
  scope: string;
  acrRequest?: AcrRequest;
  /** Threat detection stepped this client up. */
  threatStepUp?: boolean;
}

export function requiredAuthentication(facts: AuthorizationRequestFacts): AuthenticationRequirement {
  const reasons: ScaReason[] = [];
  let link: PaymentLink | undefined;
  let fresh = false;
  if (facts.detail?.type === 'payment_initiation') {
    if (facts.consentId === undefined) throw new TypeError('a payment needs its consent id to be linked');
    reasons.push('payment');
    link = paymentLinkOf(facts.consentId, facts.detail);
    fresh = true;
  } else if (facts.detail?.type === 'account_information' || facts.scope.split(' ').some((s) => s !== '' && !IDENTITY_SCOPES.has(s))) {
    reasons.push('account_access');
  }
  if (facts.acrRequest !== undefined && wantsSca(facts.acrRequest)) reasons.push('requested_by_client');
  if (facts.threatStepUp === true) {
    reasons.push('threat_step_up');
    fresh = true;
  }
  return { acr: reasons.length > 0 ? ACR_SCA : ACR_CA, fresh, reasons, ...(link === undefined ? {} : { link }) };
}

/**
 * Whether the TPP's acr request asks for SCA. An essential request naming only values Moat does not
 * know cannot be met at all; a voluntary one (`acr_values`) is a wish and is met as well as Moat can.
 */
function wantsSca(request: AcrRequest): boolean {
  const known = request.values.filter((v): v is Acr => (ACR_VALUES_SUPPORTED as readonly string[]).includes(v));
  if (known.length === 0) {
    if (request.essential)
      throw new AuthenticationRequirementsUnmet(`none of the requested acr values can be met; this server supports ${ACR_VALUES_SUPPORTED.join(' and ')}`);
    return false;
  }
  // Asking for ca as well means ca is acceptable; SCA is still what Moat gives where it is needed.
  return !known.includes(ACR_CA);
}

/** The acr request from `acr_values` (space separated, voluntary) and the `claims` parameter's id_token.acr. */
export function acrRequestOf(params: { acr_values?: unknown; claims?: unknown }): AcrRequest | undefined {
  const claim = acrClaim(params.claims);
  if (claim !== undefined) return claim;
  if (typeof params.acr_values === 'string' && params.acr_values.trim() !== '') {
    return { values: params.acr_values.trim().split(/\s+/), essential: false };
  }
  return undefined;
}

function acrClaim(claims: unknown): AcrRequest | undefined {
  const acr = (claimsParameter(claims) as { id_token?: { acr?: { essential?: unknown; value?: unknown; values?: unknown } | null } } | null | undefined)
    ?.id_token?.acr;
  if (acr === undefined || acr === null) return undefined;
  const values = typeof acr.value === 'string' ? [acr.value] : Array.isArray(acr.values) ? acr.values.filter((v): v is string => typeof v === 'string') : [];
  if (values.length === 0) return undefined;
  return { values, essential: acr.essential === true };
}

/** Why an authentication does not meet a requirement, or undefined when it does. */
export type Shortfall = 'not_strong' | 'not_fresh' | 'not_linked' | 'other_customer';

/**
 * Whether `auth` meets `requirement`. `freshSince` is when this interaction began: a fresh
 * authentication is one performed after it. A payment's authentication must be linked to exactly
 * the values the consent has now (RTS Art. 5(1)(d): any change makes the code invalid).
 */
export function shortfall(
  auth: CustomerAuthentication | undefined,
  requirement: AuthenticationRequirement,
  context: { customerId?: string; freshSince?: Date } = {},
): Shortfall | undefined {
  if (auth === undefined) return requirement.acr === ACR_SCA ? 'not_strong' : undefined;
  if (context.customerId !== undefined && auth.customerId !== context.customerId) return 'other_customer';
  if (requirement.acr === ACR_SCA && !isStrongAuthentication(auth)) return 'not_strong';
  if (requirement.fresh && context.freshSince !== undefined && auth.authTime.getTime() < Math.floor(context.freshSince.getTime() / 1000) * 1000)
    return 'not_fresh';
  if (requirement.link !== undefined && !sameLink(auth.link, requirement.link)) return 'not_linked';
  return undefined;
}

/** RTS Art. 10a: account access without a new SCA lasts at most this long after the last one. */
export const DEFAULT_ACCOUNT_ACCESS_REAUTH_DAYS = 180;

/** Whether account access authenticated at `authTime` needs the customer again at `now`. */
export function accountAccessReauthDue(authTime: Date, now: Date, reauthDays: number): boolean {
  return now.getTime() - authTime.getTime() > reauthDays * 86_400_000;
}

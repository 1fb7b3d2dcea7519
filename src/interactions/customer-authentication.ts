import type Provider from 'oidc-provider';
import { newConsentId } from '../consents/consent.ts';
import { acrRequestOf, requiredAuthentication, type AuthenticationRequirement } from '../sca/authentication-policy.ts';
import type { RequestedDetail } from '../consents/authorization-details.ts';
import type { FactorUse } from '../sca/authentication.ts';

/*
 * The interaction's side of strong customer authentication: between the password and the second
 * factor, which customer has given a correct password is kept in the interaction itself (server
 * side, bound to the interaction cookie), never in the page. The policy in src/sca decides what
 * the authorization needs; this file feeds it the request's facts.
 */

/** Where the half-finished authentication waits in oidc-provider's interaction `result`. */
const PENDING_KEY = 'moatPendingAuthentication';

export interface PendingAuthentication {
  customerId: string;
  /** When the password was checked (epoch seconds). */
  passwordAt: number;
  /**
   * The consent a payment's authentication is linked to: the lodged intent, or for RFC 9396
   * authorization_details the id the consent will be created with.
   */
  consentId?: string;
  /**
   * The first step was a sign-in at the bank's IdP (customers.source: oidc), not a password: what
   * it proved as the bank's mapping judged it (src/federation/sca-mapping.ts), whether that alone is
   * SCA, and when it happened (epoch seconds). Moat's own factor follows when the authorization
   * needs what the upstream login cannot give: a payment's dynamic linking, or SCA it fell short of.
   */
  upstream?: { factor: FactorUse; sca: boolean; authTime: number };
}

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

export function pendingAuthenticationOf(details: InteractionDetails): PendingAuthentication | undefined {
  const pending = (details.result as Record<string, unknown> | undefined)?.[PENDING_KEY] as PendingAuthentication | undefined;
  return typeof pending?.customerId === 'string' && typeof pending.passwordAt === 'number' ? pending : undefined;
}

/** Keeps the password step's outcome in the interaction until the second factor finishes it. */
export async function savePendingAuthentication(provider: Provider, uid: string, pending: PendingAuthentication | undefined): Promise<void> {
  const interaction = await provider.Interaction.find(uid);
  if (interaction === undefined) return;
  interaction.result = pending === undefined ? undefined : { [PENDING_KEY]: pending };
  await interaction.save(Math.max(1, (interaction.exp ?? 0) - Math.floor(Date.now() / 1000)));
}

/** The consent id a payment's authentication links to, chosen once at the password step. */
export function linkedConsentId(request: { intentId?: string; detail?: RequestedDetail }): string | undefined {
  if (request.detail?.type !== 'payment_initiation') return undefined;
  return request.intentId ?? newConsentId('domestic_payment');
}

/** What this authorization needs, or the standard error when no factor Moat offers can meet it. */
export function requirementFor(
  request: { scope: string; detail?: RequestedDetail; consentId?: string },
  params: Record<string, unknown>,
  threatStepUp: boolean,
): AuthenticationRequirement {
  const acrRequest = acrRequestOf(params);
  return requiredAuthentication({
    scope: request.scope,
    ...(request.detail === undefined ? {} : { detail: request.detail }),
    ...(request.consentId === undefined ? {} : { consentId: request.consentId }),
    ...(acrRequest === undefined ? {} : { acrRequest }),
    threatStepUp,
  });
}

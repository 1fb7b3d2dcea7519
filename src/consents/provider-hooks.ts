import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { claimsParameter } from '../http/claims-parameter.ts';
import { AUTHORIZATION_DETAILS_TYPES, AuthorizationDetailsInvalid, parseRequestedDetail, ROLE_FOR_TYPE, type GrantedDetail } from './authorization-details.ts';
import type { Consent } from './consent.ts';
import type { ConsentService } from './consent-service.ts';

/*
 * Where consents meet oidc-provider: RFC 9396 type validation, the authorization_details a code,
 * token and introspection carry, the consent id on every access token, the intent id in the ID
 * token and token response, and token lifetimes that never outlive the consent.
 */

/** The claim a UK OB TPP names its lodged intent with, in the `claims` request parameter. */
export const INTENT_CLAIM = 'openbanking_intent_id';

/** The intent id requested in a `claims` parameter (id_token or userinfo member), if any. */
export function intentIdFromClaims(claims: unknown): string | undefined {
  const parsed = claimsParameter(claims);
  if (parsed === undefined) return undefined;
  for (const member of ['id_token', 'userinfo'] as const) {
    const request = (parsed as Record<string, Record<string, { value?: unknown } | null> | undefined>)[member]?.[INTENT_CLAIM];
    if (typeof request?.value === 'string' && request.value !== '') return request.value;
  }
  return undefined;
}

interface RarFeature {
  enabled: true;
  types: Record<string, { validate: (ctx: KoaContextWithOIDC, detail: unknown, client: { metadata(): Record<string, unknown> }) => void }>;
  authorizationDetailsForGrantSource: (ctx: KoaContextWithOIDC) => unknown;
  authorizationDetailsForAccessToken: (ctx: KoaContextWithOIDC, token: unknown, source?: { rar?: unknown }) => unknown;
  authorizationDetailsForIntrospection: (ctx: KoaContextWithOIDC, token: { rar?: unknown }) => unknown;
}

/** features.richAuthorizationRequests: Moat's two types, validated by schema and by the TPP's roles. */
export function richAuthorizationRequestsFeature(): RarFeature {
  const validate = (ctx: KoaContextWithOIDC, detail: unknown, client: { metadata(): Record<string, unknown> }) => {
    const all = JSON.parse(String(ctx.oidc.params?.authorization_details ?? '[]')) as unknown[];
    // One consent per authorization: several details would need several consents the customer
    // could not tell apart on one screen.
    if (Array.isArray(all) && all.length > 1) throw new errors.InvalidAuthorizationDetails('send one authorization detail per request');
    if (intentIdFromClaims(ctx.oidc.params?.claims) !== undefined) {
      throw new errors.InvalidAuthorizationDetails(`use either authorization_details or the ${INTENT_CLAIM} claim, not both`);
    }
    let parsed;
    try {
      parsed = parseRequestedDetail(detail, 'authorization_details[0]');
    } catch (err) {
      if (err instanceof AuthorizationDetailsInvalid) throw new errors.InvalidAuthorizationDetails(err.message);
      throw err;
    }
    const roles = client.metadata().software_roles;
    const needed = ROLE_FOR_TYPE[parsed.type];
    if (Array.isArray(roles) && !roles.includes(needed)) {
      throw new errors.InvalidAuthorizationDetails(
        `${parsed.type} needs the ${needed} role; this client's software statement grants ${roles.join(', ') || 'no roles'}`,
      );
    }
  };
  return {
    enabled: true,
    types: Object.fromEntries(AUTHORIZATION_DETAILS_TYPES.map((type) => [type, { validate }])),
    // What the code carries is what the customer granted (stored on the grant), not what was asked.
    authorizationDetailsForGrantSource: (ctx) => ctx.oidc.grant?.rar ?? [],
    // A token carries what its grant holds now, not what it held when the token was issued: a
    // Grant Management merge writes the merged consent into the grant, and the earlier refresh
    // tokens' new access tokens, and the earlier access tokens at introspection, carry it.
    authorizationDetailsForAccessToken: (ctx, _token, source) => ctx.oidc.entities.Grant?.rar ?? source?.rar ?? [],
    authorizationDetailsForIntrospection: (ctx, token) => ctx.oidc.entities.Grant?.rar ?? token.rar ?? [],
  };
}

/** Seconds until the consent a grant or token carries expires, if it has an expiry. */
export function secondsUntilConsentExpiry(rar: unknown): number | undefined {
  if (!Array.isArray(rar)) return undefined;
  const expiries = (rar as Partial<GrantedDetail>[])
    .map((d) => ('expirationDateTime' in d && typeof d.expirationDateTime === 'string' ? Date.parse(d.expirationDateTime) : Number.NaN))
    .filter((t) => Number.isFinite(t));
  if (expiries.length === 0) return undefined;
  return Math.max(1, Math.floor((Math.min(...expiries) - Date.now()) / 1000));
}

/** A lifetime that never outlives the consent: oidc-provider ttl functions receive the token. */
export function cappedByConsent(configured: number, token: { rar?: unknown } | undefined): number {
  const left = secondsUntilConsentExpiry(token?.rar);
  return left === undefined ? configured : Math.min(configured, left);
}

/** The consent an access token is issued under (by its grant), or undefined. */
export type ConsentOfToken = (token: object) => Promise<Consent | undefined>;

/**
 * One consent lookup per token: extraTokenClaims is composed of several hooks (the consent id here,
 * the SCA claims and the re-authentication rule in sca-policy.ts) that each need the consent of the
 * token being issued. The promise is remembered per token object, so it is forgotten with the token.
 */
export function consentOfTokenOnce(consents: Pick<ConsentService, 'findByGrantId'>): ConsentOfToken {
  const memo = new WeakMap<object, Promise<Consent | undefined>>();
  return (token) => {
    let found = memo.get(token);
    if (found === undefined) {
      const grantId = (token as { grantId?: string }).grantId;
      found = grantId === undefined ? Promise.resolve(undefined) : consents.findByGrantId(grantId);
      memo.set(token, found);
    }
    return found;
  };
}

/** extraTokenClaims: every access token names its consent, so the bank's APIs can enforce it. */
export function consentTokenClaims(consentOf: ConsentOfToken): NonNullable<Configuration['extraTokenClaims']> {
  return async (_ctx, token) => {
    const consent = await consentOf(token);
    if (consent === undefined) return undefined;
    return {
      consent_id: consent.id,
      ...(consent.origin === 'intent' ? { [INTENT_CLAIM]: consent.id } : {}),
    };
  };
}

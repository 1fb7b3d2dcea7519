import type { FapiProfile } from '../config/schema.ts';

/*
 * Which FAPI profile a client is held to. Every client gets the FAPI 2.0 Security Profile unless it
 * registered `fapi_profile`; Message Signing and FAPI 1.0 Advanced add signed request objects and
 * signed (JARM) authorization responses on top. oidc-provider knows two profile families, '2.0' and
 * '1.0 Final'; Moat adds the message-signing obligations through client metadata.
 */

/** Client metadata carrying the profile (a Moat extension, registered like any RFC 7591 field). */
export const FAPI_PROFILE_METADATA = 'fapi_profile';

export type ProviderFapiProfile = '2.0' | '1.0 Final';

export function providerProfileFor(profile: FapiProfile): ProviderFapiProfile {
  return profile === 'fapi1-advanced' ? '1.0 Final' : '2.0';
}

/** FAPI 2.0 Message Signing §5.3 and FAPI 1.0 Advanced §5.2.2: request objects must be signed. */
export function requiresSignedRequestObject(profile: FapiProfile): boolean {
  return profile !== 'fapi2-security';
}

/** FAPI 2.0 Message Signing §5.4 and FAPI 1.0 Advanced with response_type=code: JARM responses. */
export function requiresJarm(profile: FapiProfile): boolean {
  return profile !== 'fapi2-security';
}

export function isFapiProfile(value: unknown): value is FapiProfile {
  return value === 'fapi2-security' || value === 'fapi2-message-signing' || value === 'fapi1-advanced';
}

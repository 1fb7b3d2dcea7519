import type { UpstreamIdpConfig } from '../config/schema.ts';

/*
 * Whether a login at the bank's IdP counts as strong customer authentication (RTS on SCA, Art. 4:
 * two independent elements). Moat cannot see the factors the IdP used; the bank tells Moat, in
 * customers.oidc.sca, which upstream `acr` values and which `amr` combinations (RFC 8176) are SCA.
 */

/** What the upstream ID token says about how the customer authenticated. */
export interface UpstreamAuthentication {
  acr?: string;
  amr: string[];
}

export function countsAsSca(mapping: UpstreamIdpConfig['sca'], auth: UpstreamAuthentication): boolean {
  if (auth.acr !== undefined && mapping.acrValues.includes(auth.acr)) return true;
  return mapping.amrCombinations.some((combination) => combination.every((method) => auth.amr.includes(method)));
}

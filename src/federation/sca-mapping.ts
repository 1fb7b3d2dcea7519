import type { UpstreamIdpConfig } from '../config/schema.ts';
import { ACR_SCA, type AuthenticationMethod, type CustomerAuthentication, type FactorCategory, type FactorUse } from '../sca/authentication.ts';

/*
 * Whether a login at the bank's IdP counts as strong customer authentication (RTS on SCA, Art. 4:
 * two independent elements from different categories). Moat cannot see the factors the IdP used;
 * the bank tells Moat, in customers.oidc.sca, which upstream `acr` values and which `amr`
 * combinations (RFC 8176) are SCA.
 */

/** What the upstream ID token says about how the customer authenticated. */
export interface UpstreamAuthentication {
  acr?: string;
  amr: string[];
}

/** The part of customers.oidc.sca that judges a login. */
export type ScaMapping = Pick<UpstreamIdpConfig['sca'], 'acrValues' | 'amrCombinations'> & Partial<Pick<UpstreamIdpConfig['sca'], 'belowScaCategory'>>;

export function countsAsSca(mapping: ScaMapping, auth: UpstreamAuthentication): boolean {
  if (auth.acr !== undefined && mapping.acrValues.includes(auth.acr)) return true;
  return mapping.amrCombinations.some((combination) => combination.every((method) => auth.amr.includes(method)));
}

/** RFC 8176 §2 methods by the RTS category of element they prove (Art. 6 knowledge, 7 possession, 8 inherence). */
const CATEGORY_OF_METHOD: Record<string, FactorCategory> = {
  pwd: 'knowledge',
  pin: 'knowledge',
  kba: 'knowledge',
  otp: 'possession',
  sms: 'possession',
  tel: 'possession',
  hwk: 'possession',
  swk: 'possession',
  sc: 'possession',
  pop: 'possession',
  fpt: 'inherence',
  face: 'inherence',
  iris: 'inherence',
  retina: 'inherence',
  vbm: 'inherence',
};

/**
 * The customer authentication an upstream login the bank counts as SCA amounts to: acr
 * urn:openbanking:psd2:sca, the IdP's amr passed on, and the categories its amr shows — or, when it
 * shows fewer than two (an acr-only IdP), the two the bank's mapping vouches for.
 */
export function federatedAuthentication(customerId: string, auth: UpstreamAuthentication & { authTime?: number }, now: Date): CustomerAuthentication {
  const shown = categoriesShown(auth.amr);
  const categories: FactorCategory[] = shown.length >= 2 ? shown : ['knowledge', 'possession'];
  // The IdP's RFC 8176 values are passed on as it sent them; `mfa` says two categories were used.
  const amr = [...new Set([...auth.amr, 'mfa'])] as AuthenticationMethod[];
  return {
    customerId,
    acr: ACR_SCA,
    amr,
    categories,
    authTime: auth.authTime === undefined ? now : new Date(auth.authTime * 1000),
  };
}

function categoriesShown(amr: readonly string[]): FactorCategory[] {
  return [...new Set(amr.flatMap((m) => (CATEGORY_OF_METHOD[m] === undefined ? [] : [CATEGORY_OF_METHOD[m]])))];
}

/**
 * The upstream login as one factor among those of a Moat authentication, for Moat's own step after
 * it (a one-time code or a passkey, linked to a payment's values, or stepping a weaker login up).
 * A login the mapping counts as SCA brings the categories federatedAuthentication gives it. One it
 * does not count brings at most one category — the bank said it is not two — read from its amr, or
 * the configured `belowScaCategory` when its amr names none; with neither, none at all, so only a
 * factor that is SCA on its own (a passkey) can make the whole strong.
 */
export function upstreamFactor(mapping: ScaMapping, auth: UpstreamAuthentication): FactorUse {
  // `mfa` is Moat's to say, over the whole authentication (sca/authentication.ts amrOf).
  const amr = auth.amr.filter((m) => m !== 'mfa') as AuthenticationMethod[];
  const shown = categoriesShown(auth.amr);
  if (countsAsSca(mapping, auth)) return { kind: 'upstream', amr, categories: shown.length >= 2 ? shown : ['knowledge', 'possession'] };
  const one = shown[0] ?? mapping.belowScaCategory;
  return { kind: 'upstream', amr, categories: one === undefined ? [] : [one] };
}

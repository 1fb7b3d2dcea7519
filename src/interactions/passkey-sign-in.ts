import type { ParameterizedContext } from 'koa';
import { allowScript } from '../http/security-headers.ts';
import { PasskeyRefused, type PasskeyCeremonies } from '../passkeys/passkey-ceremonies.ts';
import { completedAuthentication, passkeyFactor, type CustomerAuthentication, type FactorUse } from '../sca/authentication.ts';
import type { AuthenticationRequirement } from '../sca/authentication-policy.ts';
import { paymentLinkHash, type PaymentLink } from '../sca/dynamic-linking.ts';
import type { Views } from './views.ts';

/*
 * Signing in to an authorization with a passkey. One gesture with user verification is SCA on its
 * own (src/sca/authentication.ts: possession plus inherence or knowledge). For a payment the
 * challenge commits to the payment's link hash (RTS Art. 5): the options carry the consent id the
 * link was made for, the verified assertion gives back the hash the customer's authenticator
 * signed, and it must be the hash of the payment as it is now — else the customer approved other
 * values and the sign-in is refused. The consent decision checks the link once more
 * (authentication-policy.ts `shortfall`), so a change after sign-in is refused there.
 */

/** The login page's passkey form: its options and the page's one script. */
export interface PasskeyOffer {
  options: string;
  script: { src: string; integrity: string; nonce: string };
}

const bindingOf = (uid: string) => `interaction:${uid}`;

/** `customerId` when the customer is known already (signed in at the bank's IdP): only their passkeys are asked for. */
export async function passkeyOffer(
  ctx: ParameterizedContext,
  ceremonies: PasskeyCeremonies,
  views: Views,
  uid: string,
  link: PaymentLink | undefined,
  customerId?: string,
): Promise<PasskeyOffer> {
  const options = await ceremonies.authenticationOptions({
    binding: bindingOf(uid),
    ...(customerId === undefined ? {} : { customerId }),
    ...(link === undefined ? {} : { link: paymentLinkHash(link), context: { consentId: link.consentId } }),
  });
  return {
    options: JSON.stringify(options),
    script: { src: views.passkeyScript.path, integrity: views.passkeyScript.integrity, nonce: allowScript(ctx) },
  };
}

/**
 * Verifies the assertion posted for interaction `uid` and makes the SCA record. `requirementFor`
 * gives what the authorization needs for a consent id (the one the challenge was linked to).
 * Throws PasskeyRefused, `payment_changed` when the signed link is not the payment's now.
 */
export async function passkeySignIn(
  ceremonies: PasskeyCeremonies,
  uid: string,
  response: string,
  /** The customer already signed in at the bank's IdP: the passkey must be theirs, and that login is a factor too. */
  after: { customerId: string; also: FactorUse[] } | undefined,
  requirementFor: (consentId: string | undefined) => AuthenticationRequirement,
): Promise<CustomerAuthentication> {
  const verified = await ceremonies.authenticate({ binding: bindingOf(uid), response, ...(after === undefined ? {} : { customerId: after.customerId }) });
  const { link } = requirementFor(verified.context.consentId);
  if (link !== undefined && verified.linkedHash !== paymentLinkHash(link)) throw new PasskeyRefused('payment_changed');
  return completedAuthentication({
    customerId: verified.customerId,
    factors: [...(after?.also ?? []), passkeyFactor({ userVerified: verified.userVerified, deviceBound: verified.deviceBound })],
    authTime: verified.at,
    ...(link === undefined ? {} : { link }),
  });
}

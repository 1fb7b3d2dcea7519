import { createHash } from 'node:crypto';

/*
 * Dynamic linking (RTS on SCA, Commission Delegated Regulation (EU) 2018/389, Art. 5): for a payment
 * the authentication code is specific to the amount and the payee, the customer sees both while
 * authenticating, and any change to either makes the authentication invalid. A PaymentLink is what
 * an authentication is linked to; its hash is what a passkey challenge commits to and what the SCA
 * record stores, so "linked to exactly these values" is one comparison.
 */

/** The values an authentication for a payment is specific to (Art. 5(1)(b)). */
export interface PaymentLink {
  consentId: string;
  /** The decimal amount as the TPP sent it (`10.00`), normalised by `paymentLinkOf`. */
  amount: string;
  /** ISO 4217 code. */
  currency: string;
  creditorAccount: { schemeName: string; identification: string };
  creditorName: string;
}

/**
 * The payment values of a payment_initiation detail, as src/consents/authorization-details.ts shapes
 * them (declared here structurally so this module depends on nothing but the spec).
 */
export interface PaymentValues {
  instructedAmount: { amount: string; currency: string };
  creditorAccount: { schemeName: string; identification: string };
  creditorName: string;
}

/**
 * The link of a payment_initiation consent: RFC 9396 authorization_details and UK intents are
 * stored in the same shape (src/consents/authorization-details.ts), so one function serves both.
 */
export function paymentLinkOf(consentId: string, detail: PaymentValues): PaymentLink {
  return {
    consentId,
    amount: canonicalAmount(detail.instructedAmount.amount),
    currency: detail.instructedAmount.currency.toUpperCase(),
    creditorAccount: canonicalAccount(detail.creditorAccount),
    creditorName: detail.creditorName.normalize('NFC'),
  };
}

/**
 * A canonical SHA-256 over the link, base64url. Canonical: fixed field order in a JSON array (no
 * object key order to disagree on), amounts without insignificant zeros (`10.00` and `10` are the
 * same money), names in Unicode NFC. A version tag lets the form change without old hashes matching.
 */
export function paymentLinkHash(link: PaymentLink): string {
  const canonical = JSON.stringify([
    'moat-payment-link-v1',
    link.consentId,
    canonicalAmount(link.amount),
    link.currency.toUpperCase(),
    link.creditorAccount.schemeName,
    link.creditorAccount.identification,
    link.creditorName.normalize('NFC'),
  ]);
  return createHash('sha256').update(canonical, 'utf8').digest('base64url');
}

/** The same payment: any difference in consent, amount, currency or payee is a different one. */
export function sameLink(a: PaymentLink | undefined, b: PaymentLink | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  return paymentLinkHash(a) === paymentLinkHash(b);
}

/** `10.50`, `010.5` and `10.500` → `10.5`; `10.00` → `10`. The schema already allows only digits and one dot. */
export function canonicalAmount(amount: string): string {
  const [whole = '0', fraction = ''] = amount.trim().split('.');
  const integer = whole.replace(/^0+(?=\d)/, '');
  const decimals = fraction.replace(/0+$/, '');
  return decimals === '' ? integer : `${integer}.${decimals}`;
}

function canonicalAccount(account: PaymentValues['creditorAccount']): PaymentLink['creditorAccount'] {
  // Identifications are compared as the bank would route them: no spaces, IBAN letters upper case.
  return { schemeName: account.schemeName, identification: account.identification.replace(/\s+/g, '').toUpperCase() };
}

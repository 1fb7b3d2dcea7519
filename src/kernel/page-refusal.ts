/*
 * Why a customer's page is shown again with a message in their words, instead of going on or
 * showing the error page. Each is a status in one place, error-responses.ts (PAGE_REFUSAL_STATUS),
 * so that pages refusing alike answer alike.
 */
export type PageRefusalCode =
  /** A form posted at a step it does not belong to (sign-in already complete, password first), or a link used twice. */
  | 'out_of_step'
  /** The form's input is refused: the accounts chosen, a passkey's response, the portal's fields. */
  | 'input_refused'
  /** The customer must authenticate with something else first (a passkey, a strong sign-in). */
  | 'authentication_needed'
  /** No authentication that would do can be had here (the bank's sign-in not SCA, no Moat factor to add). */
  | 'authentication_refused'
  /** What the form assumed changed since it was shown: a payment's amount or payee (RTS Art. 5), a factor set up already. */
  | 'state_changed'
  /** What the form names is not there (a passkey to remove). */
  | 'not_found'
  /** A backend the page needs cannot answer now (the account directory, the bank's IdP). */
  | 'unavailable';

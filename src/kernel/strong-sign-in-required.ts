/*
 * A page that changes what protects the customer (stopping a consent, setting up or removing a
 * factor) asked for by a session signed in with one factor only: a stolen password alone changes
 * nothing (issue 16 §4, PSD2 RTS Art. 4). Answered by the error page (error-responses.ts).
 */
export class StrongSignInRequired extends Error {
  /** The catalogue wording (views/locales) that says what the customer must do on this page. */
  readonly messageKey: string;
  constructor(messageKey: string) {
    super('a strong sign-in is needed');
    this.name = 'StrongSignInRequired';
    this.messageKey = messageKey;
  }
}

/** What a route that detects a failure knows beyond the outcome (set on ctx.state.finding). */
export interface Finding {
  expected?: string;
  got?: string;
  /**
   * The expected value is the client's registration data (its registered subject DN): shown only
   * to a caller authenticated as that client, never to whoever merely holds the failing certificate.
   */
  expectedIsClientData?: boolean;
}

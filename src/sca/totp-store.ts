/**
 * What the one-time-code factor needs from storage. Secrets are stored sealed (SecretBox); the store
 * never sees them in the clear.
 */
export interface TotpStore {
  find(customerId: string): Promise<StoredTotp | undefined>;
  /** Starts (or restarts) an enrolment: the sealed secret, not yet confirmed. */
  savePending(customerId: string, sealedSecret: string): Promise<void>;
  /** Confirms a pending enrolment; false when there is none. */
  confirm(customerId: string, at: Date): Promise<boolean>;
  /** Removes the factor (pending or confirmed); false when there was none. */
  remove(customerId: string): Promise<boolean>;
  /**
   * Claims a time step for the customer, atomically: true the first time, false when that step's
   * code was already accepted (RFC 6238 §5.2), however many requests race.
   */
  claimTimeStep(customerId: string, timeStep: number): Promise<boolean>;
  /** Customer ids by username, for the operator API (undefined for an unknown customer). */
  customerExists(customerId: string): Promise<boolean>;
}

export interface StoredTotp {
  sealedSecret: string;
  createdAt: Date;
  confirmedAt?: Date;
}

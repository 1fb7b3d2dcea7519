/*
 * What the passkey ceremonies need kept: each customer's WebAuthn credentials (public material only)
 * and the random user handle their authenticators know them by. Implemented over Postgres (pg and
 * the embedded PGlite) in src/storage/sql/passkey-store.ts.
 */

/** singleDevice: the key cannot leave its authenticator; multiDevice: it may be synced (backup eligible). */
export type PasskeyDeviceType = 'singleDevice' | 'multiDevice';

export interface Passkey {
  /** The credential id, base64url. */
  id: string;
  customerId: string;
  /** The credential's COSE public key. */
  publicKey: Uint8Array;
  /** The authenticator's signature counter at the last use (0 when it keeps none). */
  signCount: number;
  transports: string[];
  deviceType: PasskeyDeviceType;
  backedUp: boolean;
  aaguid: string;
  /** What the customer sees it listed as. */
  name: string;
  createdAt: Date;
  lastUsedAt?: Date;
}

export type NewPasskey = Omit<Passkey, 'createdAt' | 'lastUsedAt'>;

/** The credential id is enrolled already (for this customer or another). */
export class PasskeyAlreadyEnrolled extends Error {
  constructor() {
    super('this passkey is enrolled already');
    this.name = 'PasskeyAlreadyEnrolled';
  }
}

export interface PasskeyStore {
  /** The customer's user handle, created on first use (base64url of 32 random bytes). */
  userHandle(customerId: string): Promise<string>;
  find(credentialId: string): Promise<Passkey | undefined>;
  listForCustomer(customerId: string): Promise<Passkey[]>;
  /** Throws PasskeyAlreadyEnrolled when the credential id is taken. */
  add(passkey: NewPasskey): Promise<void>;
  /**
   * Records a use. The counter moves only forward: false when another use recorded a counter at or
   * above `signCount` meanwhile (a cloned authenticator, or a replay racing this one).
   */
  recordUse(credentialId: string, signCount: number, backedUp: boolean, at: Date): Promise<boolean>;
  /** Removes one of the customer's passkeys; false when they have none by that id. */
  remove(customerId: string, credentialId: string): Promise<boolean>;
  /** Removes every passkey of the customer (an operator's reset); returns how many. */
  removeAll(customerId: string): Promise<number>;
}

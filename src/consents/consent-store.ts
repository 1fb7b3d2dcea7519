import type { ConsentAuthentication } from '../sca/authentication.ts';
import type { GrantedDetail, RequestedDetail } from './authorization-details.ts';
import type { Consent, ConsentActor, ConsentEvent, ConsentKind, ConsentOrigin, ConsentStatus } from './consent.ts';

/**
 * What the consent service needs from storage. Transitions are atomic: the status check, the update
 * and the audit event happen together or not at all, so two racing revocations record one event.
 */
export interface ConsentStore {
  create(consent: NewConsent, by: Actor): Promise<Consent>;
  find(id: string): Promise<Consent | undefined>;
  findByGrantId(grantId: string): Promise<Consent | undefined>;
  findByIdempotencyKey(clientId: string, key: string): Promise<{ consent: Consent; requestHash: string } | undefined>;
  listForCustomer(customerId: string): Promise<Consent[]>;
  listForClient(clientId: string, status?: ConsentStatus): Promise<Consent[]>;
  /**
   * Moves the consent to `to` if its current status allows it, applying `patch` and recording the
   * event. Throws ConsentNotFound or ConsentStateConflict.
   */
  transition(id: string, to: ConsentStatus, by: Actor & { reason?: string }, patch?: ConsentPatch): Promise<Consent>;
  /**
   * Changes what an Authorised consent grants (FAPI Grant Management `merge`), recording the event;
   * throws ConsentNotFound, or ConsentStateConflict when it is no longer Authorised.
   */
  amend(id: string, by: Actor & { reason?: string }, patch: ConsentPatch): Promise<Consent>;
  events(id: string): Promise<ConsentEvent[]>;
  /**
   * The TPP used the consent bound to `grantId` at `at` (consent-use.ts): kept unless a later use is
   * already recorded; nothing when no consent has that grant.
   */
  recordUse(grantId: string, at: Date): Promise<void>;
  /** Authorised consents whose expiry has passed. */
  dueForExpiry(now: Date, limit: number): Promise<Consent[]>;
}

export interface Actor {
  actor: ConsentActor;
  actorId?: string;
}

export interface NewConsent {
  id: string;
  kind: ConsentKind;
  origin: ConsentOrigin;
  clientId: string;
  status: ConsentStatus;
  requested?: RequestedDetail;
  scope: string;
  expiresAt?: Date;
  idempotency?: { key: string; requestHash: string };
}

export interface ConsentPatch {
  customerId?: string;
  grantId?: string;
  granted?: GrantedDetail;
  scope?: string;
  expiresAt?: Date;
  authentication?: ConsentAuthentication;
}

import { DomainError } from '../kernel/domain-error.ts';
import type { ConsentAuthentication } from '../sca/authentication.ts';
import type { GrantedDetail, RequestedDetail } from './authorization-details.ts';

/*
 * A consent and its lifecycle. Status names are UK Open Banking's, which banks and TPPs already
 * use in their dashboards and support scripts.
 *
 *   AwaitingAuthorisation → Authorised | Rejected
 *   Authorised            → Revoked (customer, TPP or operator) | Expired | Consumed (single-use payment)
 */

export const CONSENT_STATUSES = ['AwaitingAuthorisation', 'Authorised', 'Rejected', 'Revoked', 'Expired', 'Consumed'] as const;
export type ConsentStatus = (typeof CONSENT_STATUSES)[number];

export const TRANSITIONS: Readonly<Record<ConsentStatus, readonly ConsentStatus[]>> = {
  AwaitingAuthorisation: ['Authorised', 'Rejected'],
  Authorised: ['Revoked', 'Expired', 'Consumed'],
  Rejected: [],
  Revoked: [],
  Expired: [],
  Consumed: [],
};

/** The statuses a consent can be in and still be moved to `to`. */
export function statusesAllowing(to: ConsentStatus): ConsentStatus[] {
  return CONSENT_STATUSES.filter((from) => TRANSITIONS[from].includes(to));
}

export function isFinal(status: ConsentStatus): boolean {
  return TRANSITIONS[status].length === 0;
}

/** account_access and domestic_payment carry details; `scope` is a plain scope authorization. */
export type ConsentKind = 'account_access' | 'domestic_payment' | 'scope';
/** How the TPP asked: an intent lodged through the consent API, RFC 9396 details, or scopes alone. */
export type ConsentOrigin = 'intent' | 'authorization_details' | 'scope';
export type ConsentActor = 'tpp' | 'customer' | 'operator' | 'system';

export interface Consent {
  id: string;
  kind: ConsentKind;
  origin: ConsentOrigin;
  clientId: string;
  status: ConsentStatus;
  customerId?: string;
  grantId?: string;
  /** Undefined for scope consents. */
  requested?: RequestedDetail;
  granted?: GrantedDetail;
  scope: string;
  expiresAt?: Date;
  /** How and when the customer was authenticated when authorising it (RTS on SCA Art. 4, 5, 10a). */
  authentication?: ConsentAuthentication;
  createdAt: Date;
  statusUpdatedAt: Date;
  /** When its TPP last used it, to within a minute (consent-use.ts); read with the customer's list only. */
  lastUsedAt?: Date;
}

export interface ConsentEvent {
  consentId: string;
  fromStatus?: ConsentStatus;
  toStatus: ConsentStatus;
  actor: ConsentActor;
  actorId?: string;
  reason?: string;
  at: Date;
}

export function kindOf(detail: RequestedDetail): Exclude<ConsentKind, 'scope'> {
  return detail.type === 'account_information' ? 'account_access' : 'domestic_payment';
}

/** A consent's id prefix says what it is, as UK OB ids do (aac-…, pdc-…). */
export function newConsentId(kind: ConsentKind): string {
  const prefix = { account_access: 'aac', domestic_payment: 'pdc', scope: 'sc' }[kind];
  return `${prefix}-${crypto.randomUUID()}`;
}

/*
 * Domain errors of the kernel's family; kernel/error-responses.ts maps them to each API's answer.
 */
export class ConsentNotFound extends DomainError {
  readonly consentId: string;
  constructor(consentId: string) {
    super('not_found', `consent ${consentId} does not exist or belongs to another party`);
    this.name = 'ConsentNotFound';
    this.consentId = consentId;
  }
}

export class ConsentStateConflict extends DomainError {
  readonly consentId: string;
  readonly status: ConsentStatus;
  readonly wanted: ConsentStatus;
  constructor(consentId: string, status: ConsentStatus, wanted: ConsentStatus) {
    super('state_conflict', `consent ${consentId} is ${status} and cannot become ${wanted}`);
    this.name = 'ConsentStateConflict';
    this.consentId = consentId;
    this.status = status;
    this.wanted = wanted;
  }
}

export class IdempotencyConflict extends DomainError {
  readonly key: string;
  constructor(key: string) {
    super('invalid_input', `x-idempotency-key ${key} was used before with a different request body`, { header: 'x-idempotency-key' });
    this.name = 'IdempotencyConflict';
    this.key = key;
  }
}

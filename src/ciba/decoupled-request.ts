import type { RequestedDetail } from '../consents/authorization-details.ts';

/*
 * A decoupled authorisation request (OpenID Connect CIBA Core 1.0) as the customer's bank app sees
 * it: which TPP asks, for what, the binding message to show, and until when. oidc-provider holds the
 * protocol side (the auth_req_id's lifetime and result); this is the inbox the app reads.
 */

export type DecoupledStatus = 'pending' | 'approved' | 'denied';

export interface DecoupledRequest {
  /** The auth_req_id oidc-provider issued. */
  id: string;
  clientId: string;
  customerId: string;
  scope: string;
  /** CIBA Core §7.1: shown on the customer's device, so they can tell this request from another. */
  bindingMessage?: string;
  /** Why the TPP asks, in its words (OpenID Connect for Identity Assurance 1.0 `purpose`): shown as the consent screen shows it. */
  purpose?: string;
  /** What the TPP asked for: its RFC 9396 detail, or the lodged intent's. */
  requested?: RequestedDetail;
  /** A UK OB intent named in the request's claims, when the TPP lodged one. */
  intentId?: string;
  /** The consent's id: the intent's, or the one the consent will be created with (a payment's SCA links to it). */
  consentId: string;
  status: DecoupledStatus;
  createdAt: Date;
  expiresAt: Date;
  decidedAt?: Date;
}

/** What the decoupled-authorisation service needs from storage. */
export interface DecoupledRequestStore {
  create(request: Omit<DecoupledRequest, 'status' | 'decidedAt'>): Promise<void>;
  find(id: string): Promise<DecoupledRequest | undefined>;
  /** The customer's requests still pending and not expired at `now`, oldest first. */
  listPending(customerId: string, now: Date): Promise<DecoupledRequest[]>;
  /** Moves a pending request to `status`; false when it was no longer pending (decided elsewhere). */
  decide(id: string, status: Exclude<DecoupledStatus, 'pending'>, at: Date): Promise<boolean>;
}

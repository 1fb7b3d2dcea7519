import type { ConsentAuthentication } from '../sca/authentication.ts';
import type { GrantDecision, GrantedDetail, RequestedDetail } from './authorization-details.ts';
import { ConsentNotFound, ConsentStateConflict, kindOf, newConsentId, type Consent } from './consent.ts';
import type { ConsentService } from './consent-service.ts';
import { managedDecision } from './grant-management.ts';

/*
 * The customer's decision on a consent, as one operation: the interaction route reads the form and
 * renders; this decides. Approving writes two records in two stores — oidc-provider's grant (what
 * the tokens carry) and Moat's consent (what the APIs and dashboards read) — and they must agree:
 * both are written or, as far as the stores allow, neither. The grant is written first, because the
 * consent names it; a consent that cannot be authorised takes the fresh grant with it, and a grant
 * that cannot be saved leaves the consent untouched (an intent stays AwaitingAuthorisation).
 */

/** What the decision needs of oidc-provider's grants; the interaction owning the grant supplies it. */
export interface GrantWriter {
  /** Saves the grant of this interaction, carrying the granted details (naming the consent); returns its id. */
  save(granted: GrantedDetail | undefined): Promise<string>;
  /**
   * FAPI Grant Management `merge`: writes this interaction's decision into the existing grant — the
   * scopes asked added, `granted` (the merged detail) in place of the grant's detail when the request
   * asked by authorization_details or an intent (`asked`) or the grant already carries one. Undefined
   * when that grant is gone; `undo` puts it back as it was.
   */
  merge(grantId: string, granted: GrantedDetail | undefined, asked: boolean): Promise<{ undo(): Promise<void> } | undefined>;
  destroy(grantId: string): Promise<void>;
}

/** The authorization request a decision answers. */
export interface DecidedRequest {
  clientId: string;
  scope: string;
  intentId?: string;
  detail?: RequestedDetail;
}

/**
 * The consent id a decision is about, minted here and only here: the lodged intent's, the one a
 * linked strong authentication already carries (a payment's challenge names it), else a new one.
 * The caller needs it before deciding — the SCA requirement links to it — and passes it back.
 */
export function consentIdAtDecision(request: DecidedRequest, linkedConsentId: string | undefined): string {
  return request.intentId ?? linkedConsentId ?? newConsentId(request.detail === undefined ? 'scope' : kindOf(request.detail));
}

export interface Approval {
  request: DecidedRequest;
  customerId: string;
  /** From consentIdAtDecision. */
  consentId: string;
  /** The customer's choice, validated by customer-choice.ts; undefined for scopes alone. */
  granted: GrantDecision | undefined;
  /** The authorization parameters (FAPI Grant Management's action and grant_id). */
  params: Record<string, unknown>;
  authentication?: ConsentAuthentication;
}

/** Decided, or refused for a reason the client may be told (invalid_request). */
export type ApprovalOutcome = { ok: true; grantId: string; consent: Consent } | { ok: false; description: string };

/**
 * Approves: applies grant management, saves the grant, authorises the consent. A consent gone or no
 * longer awaiting (authorised in another tab, revoked meanwhile) refuses; any other failure throws —
 * in both cases with no grant left behind for a consent that is not Authorised.
 */
export async function approveConsent(consents: ConsentService, grants: GrantWriter, approval: Approval): Promise<ApprovalOutcome> {
  const { request, customerId, consentId } = approval;
  let managed;
  try {
    // FAPI Grant Management: a merge grants the union with the named grant, under its id.
    managed = await managedDecision(consents, approval.params, {
      clientId: request.clientId,
      customerId,
      granted: approval.granted,
      scope: request.scope,
      consentId,
    });
  } catch (err) {
    if (err instanceof ConsentNotFound) return { ok: false, description: err.message };
    throw err;
  }
  const decided = managed.granted;
  const detail = decided === undefined ? undefined : ({ ...decided, consentId: managed.consentId } as GrantedDetail);
  let grantId: string;
  let undo: () => Promise<void>;
  if (managed.mergeIntoGrant !== undefined) {
    // A merge extends the grant the earlier tokens belong to: they stay valid, with the merged consent.
    const merged = await grants.merge(managed.mergeIntoGrant, detail, request.detail !== undefined);
    if (merged === undefined) return { ok: false, description: `the grant ${managed.consentId} no longer holds; start a new grant` };
    grantId = managed.mergeIntoGrant;
    undo = merged.undo;
  } else {
    // Accounts shared by scope are recorded on the consent only: the tokens stay what the TPP asked
    // for (no authorization_details it did not send), and the APIs read the consent.
    grantId = await grants.save(request.detail === undefined ? undefined : detail);
    undo = () => grants.destroy(grantId);
  }
  try {
    const consent = await consents.authorise({
      ...(request.intentId === undefined ? { newConsentId: consentId } : { intentId: request.intentId }),
      clientId: request.clientId,
      customerId,
      scope: managed.scope,
      grantId,
      ...(request.detail === undefined ? {} : { requested: request.detail }),
      ...(decided === undefined ? {} : { granted: decided }),
      ...(decided?.type === 'account_information' && decided.expirationDateTime !== undefined ? { expiresAt: new Date(decided.expirationDateTime) } : {}),
      ...(approval.authentication === undefined ? {} : { authentication: approval.authentication }),
      ...(managed.grantManagement === undefined ? {} : { grantManagement: managed.grantManagement }),
    });
    return { ok: true, grantId, consent };
  } catch (err) {
    // The grant must not outlive a consent that was not authorised, nor a merged grant hold more
    // than its consent. Should the grant store fail too, the consent's own failure is the one
    // reported.
    await undo().catch(() => undefined);
    if (err instanceof ConsentStateConflict || err instanceof ConsentNotFound) return { ok: false, description: err.message };
    throw err;
  }
}

/** Denies: an intent becomes Rejected; other requests are recorded as Rejected. No grant is written. */
export async function denyConsent(consents: ConsentService, denial: { request: DecidedRequest; customerId: string }): Promise<Consent> {
  const { request, customerId } = denial;
  return consents.reject({
    ...(request.intentId === undefined ? {} : { intentId: request.intentId }),
    clientId: request.clientId,
    customerId,
    ...(request.detail === undefined ? {} : { requested: request.detail }),
    scope: request.scope,
  });
}

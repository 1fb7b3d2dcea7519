import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { GrantDecision } from './authorization-details.ts';
import { ConsentNotFound, type Consent } from './consent.ts';
import type { ConsentService } from './consent-service.ts';

/*
 * FAPI Grant Management for OAuth 2.0 (Implementer's Draft 1) on Moat's consents: a grant is a
 * consent, its grant_id the consent id. An authorization (PAR or CIBA) may ask to `create` a new
 * grant, to `merge` what the customer grants now into an existing one (the same grant_id, after the
 * customer consents to the difference; the grant's earlier tokens stay valid and carry the merged
 * consent), or to `replace` one (the old consent and its tokens end when the new one is authorised). The client reads a grant with `GET /grants/{grant_id}` and revokes it, with every
 * token, with `DELETE`.
 */

export const GRANT_MANAGEMENT_ACTIONS = ['create', 'merge', 'replace'] as const;
export type GrantManagementAction = (typeof GRANT_MANAGEMENT_ACTIONS)[number];

/** Grant Management §6: the scopes of the tokens that may query and revoke grants. */
export const GRANT_MANAGEMENT_SCOPES = ['grant_management_query', 'grant_management_revoke'] as const;

/** The grant management endpoint; a grant's resource is `${GRANTS_PATH}/{grant_id}`. */
export const GRANTS_PATH = '/grants';

export interface GrantManagementRequest {
  action: GrantManagementAction;
  /** The existing grant (consent) to merge into or replace. */
  grantId?: string;
}

/** The grant management an authorization request asked for (oidc-provider validated it at PAR / CIBA). */
export function grantManagementOf(params: Record<string, unknown>): GrantManagementRequest | undefined {
  const action = params.grant_management_action;
  if (typeof action !== 'string' || !(GRANT_MANAGEMENT_ACTIONS as readonly string[]).includes(action)) return undefined;
  return { action: action as GrantManagementAction, ...(typeof params.grant_id === 'string' ? { grantId: params.grant_id } : {}) };
}

/** Grant Management §5.2: the error for a grant_id the server does not know (for this client). */
function invalidGrantId(description: string): Error {
  return new errors.CustomOIDCProviderError('invalid_grant_id', description);
}

/**
 * oidc-provider `extraParams` with their validation, at PAR, the authorization endpoint and CIBA:
 * a known action; `merge` and `replace` name a grant, `create` does not; the grant is this client's
 * and still Authorised. Another client's grant is reported as unknown, nothing more.
 */
export function grantManagementParams(
  consents: ConsentService,
): Record<string, ((ctx: KoaContextWithOIDC, value: string | undefined, client: { clientId: string }) => Promise<void>) | null> {
  return {
    grant_id: null,
    async grant_management_action(ctx, action, client) {
      const grantId = ctx.oidc.params?.grant_id as string | undefined;
      if (action === undefined) {
        if (grantId !== undefined) throw new errors.InvalidRequest('grant_id needs grant_management_action merge or replace');
        return;
      }
      if (!(GRANT_MANAGEMENT_ACTIONS as readonly string[]).includes(action)) {
        throw new errors.InvalidRequest(`grant_management_action must be one of ${GRANT_MANAGEMENT_ACTIONS.join(', ')}`);
      }
      if (action === 'create') {
        if (grantId !== undefined) throw new errors.InvalidRequest('grant_management_action create makes a new grant: send no grant_id');
        return;
      }
      if (grantId === undefined) throw new errors.InvalidRequest(`grant_management_action ${action} needs the grant_id of the grant to ${action}`);
      const grant = await grantOf(consents, grantId, client.clientId);
      if (grant === undefined) throw invalidGrantId('grant_id is not a grant of this client');
      if (grant.status !== 'Authorised') throw invalidGrantId(`grant ${grantId} is ${grant.status}; start a new grant with grant_management_action create`);
    },
  };
}

/**
 * CIBA names the customer in the request itself (login_hint and the like), so a `merge` or
 * `replace` of a grant another customer gave is refused there, with invalid_grant_id, instead of
 * being shown to a customer who could only fail to approve it. (At PAR the customer is not known
 * yet: the decision refuses it.)
 */
export async function checkGrantCustomer(consents: ConsentService, params: Record<string, unknown>, clientId: string, customerId: string): Promise<void> {
  const managed = grantManagementOf(params);
  if (managed?.grantId === undefined || managed.action === 'create') return;
  const grant = await grantOf(consents, managed.grantId, clientId);
  if (grant !== undefined && grant.customerId !== customerId) {
    throw invalidGrantId(`grant ${managed.grantId} was given by another customer than the one this request names`);
  }
}

async function grantOf(consents: ConsentService, grantId: string, clientId: string): Promise<Consent | undefined> {
  try {
    return await consents.getForClient(grantId, clientId);
  } catch {
    return undefined;
  }
}

/**
 * `merge`: what the grant holds plus what the customer granted now — the union of accounts and of
 * permissions (account access), and of scopes. A payment is never merged (it is a single use).
 */
export function mergedDecision(existing: Consent, granted: GrantDecision | undefined, scope: string): { granted: GrantDecision | undefined; scope: string } {
  const scopes = [...new Set([...existing.scope.split(' '), ...scope.split(' ')].filter(Boolean))].join(' ');
  const before = existing.granted;
  if (before?.type !== 'account_information' || granted?.type !== 'account_information') return { granted: granted ?? before, scope: scopes };
  const accounts = [...before.accounts];
  for (const account of granted.accounts) if (!accounts.some((a) => a.accountId === account.accountId)) accounts.push(account);
  const permissions = [...new Set([...before.permissions, ...granted.permissions])];
  return { granted: { ...granted, accounts, permissions }, scope: scopes };
}

/** A customer's decision, as grant management makes it. */
export interface ManagedDecision {
  granted: GrantDecision | undefined;
  scope: string;
  /** The consent the decision's grant names: the merged grant's own id, else the one given. */
  consentId: string;
  grantManagement?: GrantManagementRequest;
  /**
   * `merge`: the oidc-provider grant the named consent's tokens belong to. The decision is written
   * into it — the same grant id — so the earlier access and refresh tokens stay valid and carry the
   * merged consent.
   */
  mergeIntoGrant?: string;
}

/**
 * What a decision grants once the request's grant management is applied: for `merge`, the union
 * with the named grant (which must be this customer's: else ConsentNotFound) under its id, written
 * into the grant its tokens already belong to.
 */
export async function managedDecision(
  consents: ConsentService,
  params: Record<string, unknown>,
  decision: { clientId: string; customerId: string; granted: GrantDecision | undefined; scope: string; consentId: string },
): Promise<ManagedDecision> {
  const grantManagement = grantManagementOf(params);
  const base = {
    granted: decision.granted,
    scope: decision.scope,
    consentId: decision.consentId,
    ...(grantManagement === undefined ? {} : { grantManagement }),
  };
  if (grantManagement?.action !== 'merge' || grantManagement.grantId === undefined) return base;
  const existing = await consents.getForClient(grantManagement.grantId, decision.clientId);
  // Another customer's grant, or one with no grant to write into (never authorised), is not found.
  if (existing.customerId !== decision.customerId || existing.grantId === undefined) throw new ConsentNotFound(existing.id);
  return {
    ...base,
    ...mergedDecision(existing, decision.granted, decision.scope),
    consentId: existing.id,
    mergeIntoGrant: existing.grantId,
  };
}

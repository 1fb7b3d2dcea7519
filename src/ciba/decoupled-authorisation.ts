import Provider, { errors } from 'oidc-provider';
import type { GrantDecision, GrantedDetail } from '../consents/authorization-details.ts';
import type { Consent } from '../consents/consent.ts';
import { ConsentNotFound, ConsentStateConflict } from '../consents/consent.ts';
import type { ConsentService } from '../consents/consent-service.ts';
import { asksAccountsByScope, ChoiceInvalid, grantedDetail, offeredAccounts, scopeAccessRequest } from '../consents/customer-choice.ts';
import { managedDecision } from '../consents/grant-management.ts';
import type { AccountDirectory, CustomerAccount } from '../customers/account-directory.ts';
import type { Logger } from '../observability/logger.ts';
import { mergeIntoGrant, saveBackchannelResult } from '../provider/internals.ts';
import { ACR_SCA, completedAuthentication, consentAuthentication, type FactorUse } from '../sca/authentication.ts';
import { acrRequestOf, requiredAuthentication, shortfall, type AuthenticationRequirement } from '../sca/authentication-policy.ts';
import { DecoupledRefusal } from '../kernel/decoupled-refusal.ts';
import type { DecoupledRequest, DecoupledRequestStore } from './decoupled-request.ts';
import type { PingDelivery } from './ping-delivery.ts';

/*
 * The customer's side of a decoupled authorisation (CIBA Core §7.2–§10): the bank app lists what
 * waits for the customer, and the customer approves — with strong customer authentication and the
 * same account choice as on the consent page — or denies. The decision becomes a consent (the same
 * record, events and dashboard as a redirect authorisation) and the result oidc-provider hands to
 * the TPP's next poll, or announces to its notification endpoint (ping).
 */

/** Scopes oidc-provider grants as OpenID Connect scopes; the others are the API's (RFC 8707 resource). */
const OIDC_SCOPES = new Set(['openid', 'offline_access', 'profile']);

export interface DecoupledAuthorisationDeps {
  provider: Provider;
  store: DecoupledRequestStore;
  consents: ConsentService;
  accounts: AccountDirectory;
  ping: PingDelivery;
  logger: Logger;
  /** Threat detection stepped the client up: the approval needs a fresh SCA (always the case here). */
  steppedUp: (clientId: string) => boolean;
  now: () => Date;
  /** How long account access asked by scope alone lasts (consents.scopeAccessDays), as on the consent page. */
  scopeAccessDays: number;
}

export interface Approval {
  id: string;
  customerId: string;
  /** The factors the customer presented in the bank app just now. */
  factors: FactorUse[];
  /** The accounts chosen; absent means every account offered (at most one for a payment: the first). */
  accounts?: string[];
  /** The permission groups kept, when the customer narrowed them. */
  permissionGroups?: string[];
}

export interface DecoupledAuthorisation {
  /** A new request from the backchannel authentication endpoint, for the customer's app to show. */
  record(request: Omit<DecoupledRequest, 'status' | 'decidedAt' | 'createdAt' | 'expiresAt'> & { expiresInSeconds: number }): Promise<DecoupledRequest>;
  /** What waits for the customer now, oldest first. */
  pendingFor(customerId: string): Promise<DecoupledRequest[]>;
  /** A pending request of this customer's (another customer's is not found). */
  pendingRequest(id: string, customerId: string): Promise<DecoupledRequest>;
  /** The accounts the customer may choose from for a request. */
  offered(request: DecoupledRequest): Promise<CustomerAccount[]>;
  approve(approval: Approval): Promise<Consent>;
  deny(input: { id: string; customerId: string }): Promise<void>;
}

export function createDecoupledAuthorisation(deps: DecoupledAuthorisationDeps): DecoupledAuthorisation {
  const { provider, store, consents, logger } = deps;

  const pendingRequest = async (id: string, customerId: string) => {
    const request = await store.find(id);
    // Another customer's request is reported as absent: its existence is not theirs to learn.
    if (request === undefined || request.customerId !== customerId) throw new DecoupledRefusal('not_found', 'no such request is waiting for you');
    if (request.status !== 'pending') throw new DecoupledRefusal('already_decided', `this request was already ${request.status}`);
    if (request.expiresAt.getTime() <= deps.now().getTime()) throw new DecoupledRefusal('expired', 'this request has expired; the application must ask again');
    return request;
  };

  /**
   * oidc-provider's side of the request. `find` still returns it within the provider's clock
   * tolerance after `exp`, while the token endpoint already answers expired_token then; `isExpired`
   * is the token endpoint's own test, so a customer can never approve what the TPP was told expired.
   */
  const protocolRequest = async (request: DecoupledRequest) => {
    const found = await provider.BackchannelAuthenticationRequest.find(request.id);
    if (found === undefined || found.isExpired) throw new DecoupledRefusal('expired', 'this request has expired; the application must ask again');
    return found;
  };

  const offered = (request: DecoupledRequest) =>
    offeredAccounts(
      deps.accounts,
      request.customerId,
      {
        scope: request.scope,
        ...(request.requested === undefined ? {} : { detail: request.requested }),
      },
      { interactionId: request.id },
    );

  /**
   * RTS Art. 4 and 5: a decoupled approval is always strong — the customer is not in front of the
   * TPP, and the approval is remote access to their account — and for a payment linked to its values.
   */
  const requirementOf = (request: DecoupledRequest, params: Record<string, unknown>): AuthenticationRequirement => {
    const acrRequest = acrRequestOf(params);
    const required = requiredAuthentication({
      scope: request.scope,
      consentId: request.consentId,
      threatStepUp: deps.steppedUp(request.clientId),
      ...(request.requested === undefined ? {} : { detail: request.requested }),
      ...(acrRequest === undefined ? {} : { acrRequest }),
    });
    return { ...required, acr: ACR_SCA, fresh: true };
  };

  /**
   * Stores the result for the TPP's next token request and, for a ping-mode client, has its
   * notification endpoint called in the background, retried with back-off: the customer's decision
   * stands whatever the TPP's endpoint does.
   */
  const settle = async (
    request: InstanceType<Provider['BackchannelAuthenticationRequest']>,
    result: Parameters<typeof saveBackchannelResult>[2],
    options: Parameters<typeof saveBackchannelResult>[3],
  ) => {
    await saveBackchannelResult(provider, request, result, options);
    deps.ping.deliver(request);
  };

  return {
    async record({ expiresInSeconds, ...input }) {
      const now = deps.now();
      const request: DecoupledRequest = { ...input, status: 'pending', createdAt: now, expiresAt: new Date(now.getTime() + expiresInSeconds * 1000) };
      await store.create(request);
      logger.info(
        { event: 'ciba.requested', outcome: 'ciba_pending', clientId: request.clientId, accountId: request.customerId },
        'decoupled authorisation requested',
      );
      return request;
    },

    pendingFor: (customerId) => store.listPending(customerId, deps.now()),
    pendingRequest,
    offered,

    async approve(approval) {
      const request = await pendingRequest(approval.id, approval.customerId);
      const protocol = await protocolRequest(request);
      const requirement = requirementOf(request, (protocol.params ?? {}) as Record<string, unknown>);
      const auth = completedAuthentication({
        customerId: approval.customerId,
        factors: approval.factors,
        authTime: deps.now(),
        ...(requirement.link === undefined ? {} : { link: requirement.link }),
      });
      const gap = shortfall(auth, requirement, { customerId: request.customerId });
      if (gap !== undefined) {
        logger.warn(
          { event: 'sca.refused', outcome: `sca_${gap}`, clientId: request.clientId, consentId: request.consentId },
          'decoupled approval refused: authentication does not meet the requirement',
        );
        throw new DecoupledRefusal('sca_required', 'approving needs strong customer authentication: your password and a one-time code, or a passkey');
      }

      const choices = await offered(request);
      let granted: GrantDecision | undefined;
      try {
        const chosen = approval.accounts ?? (request.requested?.type === 'payment_initiation' ? choices.slice(0, 1) : choices).map((a) => a.id);
        const choice = { scope: request.scope, ...(request.requested === undefined ? {} : { detail: request.requested }) };
        granted =
          request.requested !== undefined
            ? grantedDetail(request.requested, choices, chosen, approval.permissionGroups)
            : asksAccountsByScope(choice)
              ? grantedDetail(scopeAccessRequest(deps.now(), deps.scopeAccessDays), choices, chosen, approval.permissionGroups)
              : undefined;
      } catch (err) {
        if (err instanceof ChoiceInvalid) throw new DecoupledRefusal('choice_invalid', err.message, { cause: err });
        throw err;
      }
      // FAPI Grant Management: a merge grants the union with the named grant, under its id.
      let managed;
      try {
        managed = await managedDecision(consents, (protocol.params ?? {}) as Record<string, unknown>, {
          clientId: request.clientId,
          customerId: request.customerId,
          granted,
          scope: request.scope,
          consentId: request.consentId,
        });
      } catch (err) {
        if (err instanceof ConsentNotFound) throw new DecoupledRefusal('not_found', 'the grant this request would extend is not yours');
        throw err;
      }
      // Decided once: a second device approving at the same moment finds it decided.
      if (!(await store.decide(request.id, 'approved', deps.now()))) throw new DecoupledRefusal('already_decided', 'this request was already decided');

      const decided = managed.granted;
      const detail = decided === undefined ? undefined : ({ ...decided, consentId: managed.consentId } as GrantedDetail);
      let rar = request.requested === undefined ? undefined : detail;
      const owner = { clientId: request.clientId, accountId: request.customerId };
      let grantId: string;
      let undo: () => Promise<void>;
      if (managed.mergeIntoGrant !== undefined) {
        // A merge extends the grant the earlier tokens belong to: they stay valid, with the merged consent.
        const merged = await mergeIntoGrant(provider, managed.mergeIntoGrant, owner, {
          add: (grant) => addAsked(grant, request, protocol),
          ...(detail === undefined ? {} : { rar: [detail as unknown as GrantDetail] }),
          asked: request.requested !== undefined,
        });
        if (merged === undefined) {
          const gone = `the grant ${managed.consentId} this request would extend no longer holds`;
          await settle(protocol, new errors.AccessDenied(gone), {});
          throw new DecoupledRefusal('already_decided', gone);
        }
        grantId = merged.grantId;
        undo = merged.undo;
        rar = merged.rar?.[0] as GrantedDetail | undefined;
      } else {
        grantId = await saveGrant(provider, request, protocol, rar);
        undo = () => provider.Grant.find(grantId).then((g) => g?.destroy());
      }
      let consent: Consent;
      try {
        consent = await consents.authorise({
          ...(request.intentId === undefined ? { newConsentId: request.consentId } : { intentId: request.intentId }),
          clientId: request.clientId,
          customerId: request.customerId,
          scope: managed.scope,
          grantId,
          ...(request.requested === undefined ? {} : { requested: request.requested }),
          ...(decided === undefined ? {} : { granted: decided }),
          ...(decided?.type === 'account_information' && decided.expirationDateTime !== undefined ? { expiresAt: new Date(decided.expirationDateTime) } : {}),
          authentication: consentAuthentication(auth),
          ...(managed.grantManagement === undefined ? {} : { grantManagement: managed.grantManagement }),
        });
      } catch (err) {
        // No grant outlives a consent that was not authorised, nor holds more than its consent.
        await undo().catch(() => undefined);
        if (err instanceof ConsentStateConflict || err instanceof ConsentNotFound) {
          await settle(protocol, new errors.AccessDenied(`the consent cannot be authorised: ${err.message}`), {});
          throw new DecoupledRefusal('already_decided', err.message);
        }
        throw err;
      }
      await settle(protocol, grantId, {
        acr: auth.acr,
        amr: auth.amr,
        authTime: Math.floor(auth.authTime.getTime() / 1000),
        // The tokens' details are the grant's (provider-hooks.ts): after a merge, the merged consent.
        ...(rar === undefined ? {} : { rar: [rar] as never }),
      });
      logger.info(
        { event: 'ciba.approved', outcome: 'ciba_approved', clientId: request.clientId, accountId: request.customerId, consentId: consent.id },
        'decoupled authorisation approved',
      );
      return consent;
    },

    async deny({ id, customerId }) {
      const request = await pendingRequest(id, customerId);
      const protocol = await protocolRequest(request);
      if (!(await store.decide(request.id, 'denied', deps.now()))) throw new DecoupledRefusal('already_decided', 'this request was already decided');
      await consents.reject({
        ...(request.intentId === undefined ? { newConsentId: request.consentId } : { intentId: request.intentId }),
        clientId: request.clientId,
        customerId,
        scope: request.scope,
        ...(request.requested === undefined ? {} : { requested: request.requested }),
      });
      await settle(protocol, new errors.AccessDenied('the customer denied the request'), {});
      logger.info({ event: 'ciba.denied', outcome: 'ciba_denied', clientId: request.clientId, accountId: customerId }, 'decoupled authorisation denied');
    },
  };
}

type Grant = InstanceType<Provider['Grant']>;
type GrantDetail = NonNullable<Grant['rar']>[number];

/** The grant of a decoupled approval: what it asked (addAsked), the granted detail. */
async function saveGrant(
  provider: Provider,
  request: DecoupledRequest,
  protocol: InstanceType<Provider['BackchannelAuthenticationRequest']>,
  rar: GrantedDetail | undefined,
): Promise<string> {
  const grant = new provider.Grant({ accountId: request.customerId, clientId: request.clientId });
  addAsked(grant, request, protocol);
  if (rar !== undefined) grant.addRar(rar as unknown as GrantDetail);
  return grant.save();
}

/** What a decoupled request asks of its grant: the requested OpenID scopes and claims, the API's scopes. */
function addAsked(grant: Grant, request: DecoupledRequest, protocol: InstanceType<Provider['BackchannelAuthenticationRequest']>): void {
  const scopes = (protocol.scope ?? request.scope).split(' ').filter(Boolean);
  const oidcScopes = scopes.filter((s) => OIDC_SCOPES.has(s));
  if (oidcScopes.length > 0) grant.addOIDCScope(oidcScopes.join(' '));
  const claims = protocol.claims as { id_token?: Record<string, unknown>; userinfo?: Record<string, unknown> } | undefined;
  const claimNames = [...Object.keys(claims?.id_token ?? {}), ...Object.keys(claims?.userinfo ?? {})];
  if (claimNames.length > 0) grant.addOIDCClaims(claimNames);
  const apiScopes = scopes.filter((s) => !OIDC_SCOPES.has(s)).join(' ');
  const resources = protocol.resource === undefined ? [] : Array.isArray(protocol.resource) ? protocol.resource : [protocol.resource];
  for (const resource of resources) grant.addResourceScope(resource, apiScopes);
}

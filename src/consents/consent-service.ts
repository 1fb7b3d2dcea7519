import { createHash } from 'node:crypto';
import type { AuditEventType, AuditLog } from '../audit/audit-log.ts';
import type { Logger } from '../observability/logger.ts';
import type { ConsentAuthentication } from '../sca/authentication.ts';
import type { GrantDecision, GrantedDetail, RequestedDetail } from './authorization-details.ts';
import {
  ConsentNotFound,
  ConsentStateConflict,
  IdempotencyConflict,
  kindOf,
  newConsentId,
  type Consent,
  type ConsentActor,
  type ConsentEvent,
  type ConsentStatus,
} from './consent.ts';
import type { ConsentStore } from './consent-store.ts';
import type { GrantManagementRequest } from './grant-management.ts';

/**
 * The consent lifecycle as one service: the consent API, the interaction routes, the customer's
 * dashboard and the expiry sweep all go through it, so every transition is checked, recorded and —
 * where it ends an authorised consent — takes the consent's tokens with it.
 */
export interface ConsentService {
  /** A TPP lodges an intent through the consent API (AwaitingAuthorisation). */
  lodgeIntent(input: { clientId: string; detail: RequestedDetail; scope: string; idempotencyKey?: string }): Promise<{ consent: Consent; replayed: boolean }>;
  /** The consent, only for the TPP that created it. */
  getForClient(id: string, clientId: string): Promise<Consent>;
  /** The consent, only for the customer it is bound to. */
  getForCustomer(id: string, customerId: string): Promise<Consent>;
  findByGrantId(grantId: string): Promise<Consent | undefined>;
  /** The customer's consents, each with the last time its TPP used it (lastUsedAt). */
  listForCustomer(customerId: string): Promise<Consent[]>;
  /** The TPP used the consent behind `grantId` (through consent-use.ts, at most once a minute). */
  recordUse(grantId: string, at: Date): Promise<void>;
  listForClient(clientId: string): Promise<Consent[]>;
  events(id: string): Promise<ConsentEvent[]>;
  /**
   * The customer approved in the interaction: an intent moves to Authorised, bound to them and to
   * the grant; authorization_details and scope requests become a new Authorised consent.
   */
  authorise(input: AuthoriseInput): Promise<Consent>;
  /** The customer denied: an intent becomes Rejected; other requests are recorded as Rejected. */
  reject(input: Omit<AuthoriseInput, 'granted' | 'grantId' | 'expiresAt' | 'authentication'>): Promise<Consent>;
  revoke(id: string, by: { actor: Exclude<ConsentActor, 'system'>; actorId: string; reason?: string }): Promise<Consent>;
  /** The TPP withdraws an intent nobody has authorised yet (it becomes Rejected). */
  withdraw(id: string, clientId: string): Promise<Consent>;
  consume(id: string, by: { actor: ConsentActor; actorId?: string }): Promise<Consent>;
  /** Revokes every authorised consent of a client (the client was deleted); returns how many. */
  revokeAllForClient(clientId: string, reason: string): Promise<number>;
  /** Expires every authorised consent past its expiry; returns how many. */
  expireDue(now?: Date): Promise<number>;
}

export interface AuthoriseInput {
  /** An intent's id, or undefined for consents created at the decision (RAR, scopes). */
  intentId?: string;
  clientId: string;
  customerId: string;
  requested?: RequestedDetail;
  granted?: GrantDecision;
  scope: string;
  grantId: string;
  expiresAt?: Date;
  /** How the customer authenticated for this decision; recorded on the consent. */
  authentication?: ConsentAuthentication;
  /** The id to give a consent created at the decision (so the grant can name it before it exists). */
  newConsentId?: string;
  /**
   * FAPI Grant Management: `merge` amends the named consent (the caller passes the merged decision,
   * see mergedDecision, written into the consent's own grant: `grantId` is that grant's) instead of
   * authorising a new one; its tokens, earlier and new, stay valid. `replace` revokes the named
   * consent, and its tokens, once the new one is authorised. Both only for the same customer's consent.
   */
  grantManagement?: GrantManagementRequest;
}

export interface ConsentServiceDeps {
  store: ConsentStore;
  /** Kills every token of the grant and the grant itself. */
  revokeGrant: (grantId: string) => Promise<void>;
  logger: Logger;
  audit?: AuditLog;
}

const AUDIT_TYPE: Record<ConsentStatus, AuditEventType> = {
  AwaitingAuthorisation: 'consent.lodged',
  Authorised: 'consent.granted',
  Rejected: 'consent.denied',
  Revoked: 'consent.revoked',
  Expired: 'consent.expired',
  Consumed: 'consent.consumed',
};

/** Granted less than was asked: fewer permissions, or fewer of the accounts the TPP named. */
function narrowed(consent: Consent): boolean {
  const { requested, granted } = consent;
  if (requested?.type !== 'account_information' || granted?.type !== 'account_information') return false;
  return granted.permissions.length < requested.permissions.length || (requested.accounts !== undefined && granted.accounts.length < requested.accounts.length);
}

const ENDS_TOKENS: ReadonlySet<ConsentStatus> = new Set(['Revoked', 'Expired']);

export function createConsentService(deps: ConsentServiceDeps): ConsentService {
  const { store, logger } = deps;

  const afterTransition = async (consent: Consent, actor: ConsentActor, actorId?: string) => {
    await deps.audit?.record({
      type: consent.status === 'Authorised' && narrowed(consent) ? 'consent.narrowed' : AUDIT_TYPE[consent.status],
      actor: actor === 'customer' ? 'customer' : actor,
      ...(actorId === undefined ? {} : { actorId }),
      clientId: consent.clientId,
      ...(consent.customerId === undefined ? {} : { customerId: consent.customerId }),
      subject: consent.id,
      detail: { kind: consent.kind, origin: consent.origin, status: consent.status, ...(consent.grantId === undefined ? {} : { grantId: consent.grantId }) },
    });
    logger.info(
      {
        event: `consent.${consent.status.toLowerCase()}`,
        outcome: `consent_${consent.status.toLowerCase()}`,
        consentId: consent.id,
        clientId: consent.clientId,
        actor,
      },
      `consent ${consent.status}`,
    );
    // A revoked or expired consent's tokens die at once: introspection answers inactive, refresh fails.
    if (ENDS_TOKENS.has(consent.status) && consent.grantId !== undefined) await deps.revokeGrant(consent.grantId);
  };

  const getForClient = async (id: string, clientId: string) => {
    const consent = await store.find(id);
    // Another TPP's consent is reported as absent: its existence is not theirs to learn.
    if (consent === undefined || consent.clientId !== clientId) throw new ConsentNotFound(id);
    return consent;
  };

  /**
   * The consent a customer's decision applies to: the lodged intent (checked to be this TPP's), or
   * for authorization_details and scope requests a new one, recorded as lodged by the TPP.
   */
  const consentAtDecision = async (input: Omit<AuthoriseInput, 'granted' | 'grantId' | 'expiresAt' | 'authentication'>): Promise<string> => {
    if (input.intentId !== undefined) return (await getForClient(input.intentId, input.clientId)).id;
    const kind = input.requested === undefined ? 'scope' : kindOf(input.requested);
    const created = await store.create(
      {
        id: input.newConsentId ?? newConsentId(kind),
        kind,
        origin: input.requested === undefined ? 'scope' : 'authorization_details',
        clientId: input.clientId,
        status: 'AwaitingAuthorisation',
        ...(input.requested === undefined ? {} : { requested: input.requested }),
        scope: input.scope,
      },
      { actor: 'tpp', actorId: input.clientId },
    );
    return created.id;
  };

  const move = async (id: string, to: ConsentStatus, by: { actor: ConsentActor; actorId?: string; reason?: string }) => {
    const consent = await store.transition(id, to, by);
    await afterTransition(consent, by.actor, by.actorId);
    return consent;
  };

  return {
    async lodgeIntent({ clientId, detail, scope, idempotencyKey }) {
      const requestHash = createHash('sha256').update(JSON.stringify(detail)).digest('base64url');
      if (idempotencyKey !== undefined) {
        const earlier = await store.findByIdempotencyKey(clientId, idempotencyKey);
        if (earlier !== undefined) {
          if (earlier.requestHash !== requestHash) throw new IdempotencyConflict(idempotencyKey);
          return { consent: earlier.consent, replayed: true };
        }
      }
      const kind = kindOf(detail);
      const consent = await store.create(
        {
          id: newConsentId(kind),
          kind,
          origin: 'intent',
          clientId,
          status: 'AwaitingAuthorisation',
          requested: detail,
          scope,
          ...(detail.type === 'account_information' && detail.expirationDateTime !== undefined ? { expiresAt: new Date(detail.expirationDateTime) } : {}),
          ...(idempotencyKey === undefined ? {} : { idempotency: { key: idempotencyKey, requestHash } }),
        },
        { actor: 'tpp', actorId: clientId },
      );
      await deps.audit?.record({ type: 'consent.lodged', actor: 'tpp', actorId: clientId, clientId, subject: consent.id, detail: { kind, origin: 'intent' } });
      logger.info({ event: 'consent.lodged', consentId: consent.id, clientId, kind }, 'consent intent lodged');
      return { consent, replayed: false };
    },

    getForClient,

    async getForCustomer(id, customerId) {
      const consent = await store.find(id);
      if (consent === undefined || consent.customerId !== customerId) throw new ConsentNotFound(id);
      return consent;
    },

    findByGrantId: (grantId) => store.findByGrantId(grantId),
    listForCustomer: (customerId) => store.listForCustomer(customerId),
    recordUse: (grantId, at) => store.recordUse(grantId, at),
    listForClient: (clientId) => store.listForClient(clientId),
    events: (id) => store.events(id),

    async authorise(input) {
      const managed = input.grantManagement?.action === 'create' ? undefined : input.grantManagement;
      const target = managed?.grantId === undefined ? undefined : await getForClient(managed.grantId, input.clientId);
      // Another customer's grant is not this customer's to extend or end.
      if (target !== undefined && target.customerId !== input.customerId) throw new ConsentNotFound(target.id);
      if (managed?.action === 'merge' && target !== undefined) {
        // The merged decision was written into the grant the consent's tokens belong to: they stay
        // valid and carry the merged consent. A new grant would leave them on the old one.
        if (target.grantId !== input.grantId) throw new Error(`a merge into ${target.id} must be written into its grant, not a new one`);
        const merged = await store.amend(
          target.id,
          { actor: 'customer', actorId: input.customerId, reason: 'grant merged: the customer granted more (FAPI Grant Management)' },
          {
            grantId: input.grantId,
            scope: input.scope,
            ...(input.granted === undefined ? {} : { granted: { ...input.granted, consentId: target.id } as GrantedDetail }),
            ...(input.expiresAt === undefined ? {} : { expiresAt: input.expiresAt }),
            ...(input.authentication === undefined ? {} : { authentication: input.authentication }),
          },
        );
        await afterTransition(merged, 'customer', input.customerId);
        return merged;
      }
      const id = await consentAtDecision(input);
      const granted = input.granted === undefined ? undefined : ({ ...input.granted, consentId: id } as GrantedDetail);
      const consent = await store.transition(
        id,
        'Authorised',
        { actor: 'customer', actorId: input.customerId },
        {
          customerId: input.customerId,
          grantId: input.grantId,
          scope: input.scope,
          ...(granted === undefined ? {} : { granted }),
          ...(input.expiresAt === undefined ? {} : { expiresAt: input.expiresAt }),
          ...(input.authentication === undefined ? {} : { authentication: input.authentication }),
        },
      );
      await afterTransition(consent, 'customer', input.customerId);
      if (managed?.action === 'replace' && target !== undefined) {
        try {
          await move(target.id, 'Revoked', { actor: 'customer', actorId: input.customerId, reason: `grant replaced by ${consent.id} (FAPI Grant Management)` });
        } catch (err) {
          // Ended by someone else meanwhile: replaced all the same.
          if (!(err instanceof ConsentStateConflict)) throw err;
        }
      }
      return consent;
    },

    async reject(input) {
      const id = await consentAtDecision(input);
      const consent = await store.transition(id, 'Rejected', { actor: 'customer', actorId: input.customerId }, { customerId: input.customerId });
      await afterTransition(consent, 'customer', input.customerId);
      return consent;
    },

    revoke: (id, by) => move(id, 'Revoked', by),
    withdraw: (id, clientId) => move(id, 'Rejected', { actor: 'tpp', actorId: clientId, reason: 'withdrawn by the TPP before authorisation' }),
    consume: (id, by) => move(id, 'Consumed', by),

    async revokeAllForClient(clientId, reason) {
      let ended = 0;
      for (const consent of await store.listForClient(clientId, 'Authorised')) {
        try {
          await move(consent.id, 'Revoked', { actor: 'operator', actorId: clientId, reason });
          ended += 1;
        } catch (err) {
          if (!(err instanceof ConsentStateConflict)) throw err;
        }
      }
      return ended;
    },

    async expireDue(now = new Date()) {
      let expired = 0;
      for (;;) {
        const due = await store.dueForExpiry(now, 100);
        if (due.length === 0) return expired;
        for (const consent of due) {
          try {
            await afterTransition(await store.transition(consent.id, 'Expired', { actor: 'system', reason: 'expiry reached' }), 'system');
            expired += 1;
          } catch (err) {
            // Revoked by someone else in the meantime: nothing to expire.
            if (!(err instanceof ConsentStateConflict)) throw err;
          }
        }
        if (due.length < 100) return expired;
      }
    },
  };
}

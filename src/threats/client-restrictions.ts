import { DomainError } from '../kernel/domain-error.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import type { Logger } from '../observability/logger.ts';
import type { InvalidationBus } from '../caching/invalidation.ts';
import type { ThreatFlag } from './detector.ts';

/*
 * Quarantine and step-up, per client, in Postgres (so every instance and every restart agrees).
 * oidc-provider asks synchronously whether a client may authenticate and how long a token lives,
 * so each instance keeps the restrictions in force in memory, refreshed every few seconds and at
 * once when it changes one itself.
 *
 * - quarantine: the client can no longer authenticate, its tokens are revoked (consents revoked,
 *   its client_credentials tokens inactive at introspection), until an operator releases it;
 * - step-up: for a while, no refresh (the TPP must come back to the customer for fresh consent) and
 *   short access tokens.
 */

export type RestrictionKind = 'quarantine' | 'step-up';

export interface Restriction {
  id: number;
  clientId: string;
  kind: RestrictionKind;
  reason: string;
  flagId?: number;
  since: Date;
  until?: Date;
  createdBy: string;
  releasedAt?: Date;
  releasedBy?: string;
}

export interface StoredFlag extends ThreatFlag {
  id: number;
  response: string;
}

export class RestrictionNotFound extends DomainError {
  constructor(clientId: string, kind: RestrictionKind) {
    super('not_found', `client ${clientId} has no ${kind} in force`);
    this.name = 'RestrictionNotFound';
  }
}

export interface ClientRestrictions {
  /** Synchronous, from this instance's view (at most `refreshSeconds` old for other instances' changes). */
  inForce(clientId: string): { quarantine?: Restriction; stepUp?: Restriction };
  quarantine(clientId: string, reason: string, by: { actor: 'system' | 'operator'; actorId: string; flagId?: number }): Promise<Restriction>;
  stepUp(clientId: string, reason: string, forSeconds: number, by: { actor: 'system' | 'operator'; actorId: string; flagId?: number }): Promise<Restriction>;
  release(clientId: string, kind: RestrictionKind, operator: string): Promise<Restriction>;
  list(filter?: { clientId?: string; includeReleased?: boolean }): Promise<Restriction[]>;
  recordFlag(flag: ThreatFlag, response: string): Promise<number>;
  flags(filter?: { clientId?: string; since?: Date; limit?: number }): Promise<StoredFlag[]>;
  /** Re-reads the restrictions in force; concurrent calls share one read, re-run if asked for during it. */
  refresh(): Promise<void>;
  /** Resolves once the refresh under way, if any, is done. */
  refreshed(): Promise<void>;
  /**
   * Refreshes whenever Postgres announces a change to a client's standing (migrations/
   * 20261206500100_client_restriction_announcements.sql) or announcements may have been missed, so
   * a quarantine or release on another instance is in force here as soon as it is heard rather
   * than at the next periodic refresh. Returns the function that stops it.
   */
  follow(bus: InvalidationBus): () => void;
  start(): void;
  stop(): void;
}

/** A restriction about to be put in force. */
export type NewRestriction = Omit<Restriction, 'id' | 'releasedAt' | 'releasedBy'>;

/**
 * The restrictions and the flags behind them (Postgres `client_restriction`, `threat_flag`;
 * src/storage/sql/restriction-store.ts). At most one restriction of a kind is in force per
 * client.
 */
export interface RestrictionStore {
  /** The restrictions not released and not expired at `at`. */
  inForceAt(at: Date): Promise<Restriction[]>;
  /**
   * Puts the restriction in force, after closing an expired one of its kind (released by
   * 'expired' at `since`); undefined when one of its kind is still in force.
   */
  open(restriction: NewRestriction): Promise<Restriction | undefined>;
  /** The unreleased restriction of this kind (there is one: `open` just found it). */
  openOf(clientId: string, kind: RestrictionKind): Promise<Restriction>;
  /** Releases the unreleased restriction of this kind; undefined when there is none. */
  release(clientId: string, kind: RestrictionKind, at: Date, by: string): Promise<Restriction | undefined>;
  /** Newest first, at most 500. */
  list(filter: { clientId?: string; includeReleased?: boolean }): Promise<Restriction[]>;
  /** Stores the flag and the response to it; returns its id. */
  recordFlag(flag: ThreatFlag, response: string): Promise<number>;
  /** Newest first, at most `limit` (100 unless given, 1000 at most). */
  flags(filter: { clientId?: string; since?: Date; limit?: number }): Promise<StoredFlag[]>;
}

export function createClientRestrictions(deps: {
  store: RestrictionStore;
  audit: AuditLog;
  logger: Logger;
  /** Revokes every consent and token of the client; returns how many consents ended. */
  revokeClientTokens: (clientId: string, reason: string) => Promise<number>;
  refreshSeconds?: number;
  now?: () => Date;
}): ClientRestrictions {
  const now = deps.now ?? (() => new Date());
  let active = new Map<string, { quarantine?: Restriction; stepUp?: Restriction }>();
  let timer: NodeJS.Timeout | undefined;

  const load = async () => {
    const rows = await deps.store.inForceAt(now());
    const next = new Map<string, { quarantine?: Restriction; stepUp?: Restriction }>();
    for (const row of rows) {
      const entry = next.get(row.clientId) ?? {};
      if (row.kind === 'quarantine') entry.quarantine = row;
      else entry.stepUp = row;
      next.set(row.clientId, entry);
    }
    active = next;
  };

  let loading: Promise<void> | undefined;
  let again = false;
  const refresh = (): Promise<void> => {
    if (loading !== undefined) {
      // A change announced while a read is under way may not be in that read: read once more.
      again = true;
      return loading;
    }
    loading = (async () => {
      try {
        do {
          again = false;
          await load();
        } while (again);
      } finally {
        loading = undefined;
      }
    })();
    return loading;
  };
  const refreshInBackground = () => {
    refresh().catch((err: unknown) => deps.logger.warn({ err, event: 'restrictions.refresh_failed' }, 'could not refresh client restrictions'));
  };

  const insert = (clientId: string, kind: RestrictionKind, reason: string, until: Date | undefined, by: { actorId: string; flagId?: number }) =>
    deps.store.open({
      clientId,
      kind,
      reason,
      since: now(),
      createdBy: by.actorId,
      ...(by.flagId === undefined ? {} : { flagId: by.flagId }),
      ...(until === undefined ? {} : { until }),
    });

  const existing = (clientId: string, kind: RestrictionKind) => deps.store.openOf(clientId, kind);

  return {
    inForce(clientId) {
      const entry = active.get(clientId);
      if (entry === undefined) return {};
      const t = now().getTime();
      return {
        ...(entry.quarantine === undefined ? {} : { quarantine: entry.quarantine }),
        ...(entry.stepUp === undefined || (entry.stepUp.until !== undefined && entry.stepUp.until.getTime() <= t) ? {} : { stepUp: entry.stepUp }),
      };
    },

    async quarantine(clientId, reason, by) {
      const created = await insert(clientId, 'quarantine', reason, undefined, by);
      if (created === undefined) return existing(clientId, 'quarantine');
      await load();
      const consentsRevoked = await deps.revokeClientTokens(clientId, `client quarantined: ${reason}`);
      await deps.audit.record({
        type: 'client.quarantined',
        actor: by.actor,
        actorId: by.actorId,
        clientId,
        subject: clientId,
        detail: { reason, consentsRevoked, ...(by.flagId === undefined ? {} : { flagId: by.flagId }) },
      });
      deps.logger.warn({ event: 'client.quarantined', clientId, reason, consentsRevoked, by: by.actorId }, 'client quarantined');
      return created;
    },

    async stepUp(clientId, reason, forSeconds, by) {
      const created = await insert(clientId, 'step-up', reason, new Date(now().getTime() + forSeconds * 1000), by);
      if (created === undefined) return existing(clientId, 'step-up');
      await load();
      await deps.audit.record({
        type: 'admin.action',
        actor: by.actor,
        actorId: by.actorId,
        clientId,
        subject: clientId,
        detail: { action: 'step-up', reason, until: created.until?.toISOString(), ...(by.flagId === undefined ? {} : { flagId: by.flagId }) },
      });
      deps.logger.warn({ event: 'client.stepped_up', clientId, reason, until: created.until }, 'client stepped up: no refresh, short tokens');
      return created;
    },

    async release(clientId, kind, operator) {
      const released = await deps.store.release(clientId, kind, now(), operator);
      if (released === undefined) throw new RestrictionNotFound(clientId, kind);
      await load();
      await deps.audit.record({
        type: kind === 'quarantine' ? 'client.released' : 'admin.action',
        actor: 'operator',
        actorId: operator,
        clientId,
        subject: clientId,
        detail: kind === 'quarantine' ? { restriction: released.id } : { action: 'step-up released', restriction: released.id },
      });
      deps.logger.warn({ event: 'client.released', clientId, kind, by: operator }, `client ${kind} released`);
      return released;
    },

    list: (filter = {}) => deps.store.list(filter),
    recordFlag: (flag, response) => deps.store.recordFlag(flag, response),
    flags: (filter = {}) => deps.store.flags(filter),

    refresh,
    refreshed: () => loading ?? Promise.resolve(),
    follow: (bus) =>
      bus.subscribe({
        invalidate: (topic) => {
          if (topic === 'client') refreshInBackground();
        },
        reset: refreshInBackground,
      }),
    start() {
      timer = setInterval(refreshInBackground, (deps.refreshSeconds ?? 2) * 1000);
      timer.unref();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
    },
  };
}

import { DomainError } from '../kernel/domain-error.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import type { Logger } from '../observability/logger.ts';
import type { InvalidationBus } from '../caching/invalidation.ts';
import type { SqlClient } from '../storage/sql/sql-client.ts';
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

interface RestrictionRow {
  id: string | number;
  client_id: string;
  kind: RestrictionKind;
  reason: string;
  flag_id: string | number | null;
  since: Date | string;
  until: Date | string | null;
  created_by: string;
  released_at: Date | string | null;
  released_by: string | null;
}

function toRestriction(r: RestrictionRow): Restriction {
  return {
    id: Number(r.id),
    clientId: r.client_id,
    kind: r.kind,
    reason: r.reason,
    since: new Date(r.since),
    createdBy: r.created_by,
    ...(r.flag_id === null ? {} : { flagId: Number(r.flag_id) }),
    ...(r.until === null ? {} : { until: new Date(r.until) }),
    ...(r.released_at === null ? {} : { releasedAt: new Date(r.released_at) }),
    ...(r.released_by === null ? {} : { releasedBy: r.released_by }),
  };
}

export function createClientRestrictions(deps: {
  sql: SqlClient;
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
    const { rows } = await deps.sql.query<RestrictionRow>('SELECT * FROM client_restriction WHERE released_at IS NULL AND (until IS NULL OR until > $1)', [
      now(),
    ]);
    const next = new Map<string, { quarantine?: Restriction; stepUp?: Restriction }>();
    for (const row of rows.map(toRestriction)) {
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

  const insert = async (clientId: string, kind: RestrictionKind, reason: string, until: Date | undefined, by: { actorId: string; flagId?: number }) => {
    // Expired step-ups are closed first, so the one-in-force index admits the new one.
    await deps.sql.query(
      "UPDATE client_restriction SET released_at = $2, released_by = 'expired' WHERE client_id = $1 AND kind = $3 AND released_at IS NULL AND until IS NOT NULL AND until <= $2",
      [clientId, now(), kind],
    );
    const { rows } = await deps.sql.query<RestrictionRow>(
      `INSERT INTO client_restriction (client_id, kind, reason, flag_id, since, until, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (client_id, kind) WHERE released_at IS NULL DO NOTHING RETURNING *`,
      [clientId, kind, reason, by.flagId ?? null, now(), until ?? null, by.actorId],
    );
    return rows[0] === undefined ? undefined : toRestriction(rows[0]);
  };

  const existing = async (clientId: string, kind: RestrictionKind) => {
    const { rows } = await deps.sql.query<RestrictionRow>('SELECT * FROM client_restriction WHERE client_id = $1 AND kind = $2 AND released_at IS NULL', [
      clientId,
      kind,
    ]);
    return toRestriction(rows[0]!);
  };

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
      const { rows } = await deps.sql.query<RestrictionRow>(
        'UPDATE client_restriction SET released_at = $3, released_by = $4 WHERE client_id = $1 AND kind = $2 AND released_at IS NULL RETURNING *',
        [clientId, kind, now(), operator],
      );
      if (rows[0] === undefined) throw new RestrictionNotFound(clientId, kind);
      await load();
      await deps.audit.record({
        type: kind === 'quarantine' ? 'client.released' : 'admin.action',
        actor: 'operator',
        actorId: operator,
        clientId,
        subject: clientId,
        detail: kind === 'quarantine' ? { restriction: rows[0].id } : { action: 'step-up released', restriction: rows[0].id },
      });
      deps.logger.warn({ event: 'client.released', clientId, kind, by: operator }, `client ${kind} released`);
      return toRestriction(rows[0]);
    },

    async list(filter = {}) {
      const { rows } = await deps.sql.query<RestrictionRow>(
        `SELECT * FROM client_restriction WHERE ($1::text IS NULL OR client_id = $1) AND ($2::boolean OR released_at IS NULL) ORDER BY id DESC LIMIT 500`,
        [filter.clientId ?? null, filter.includeReleased ?? false],
      );
      return rows.map(toRestriction);
    },

    async recordFlag(flag, response) {
      const { rows } = await deps.sql.query<{ id: string }>(
        `INSERT INTO threat_flag (at, entity, client_id, signal, severity, kind, expected, seen, score, explanation, response)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
        [
          flag.at,
          flag.entity,
          flag.clientId ?? null,
          flag.signal,
          flag.severity,
          flag.kind,
          flag.expected,
          flag.seen,
          flag.score ?? null,
          flag.explanation,
          response,
        ],
      );
      return Number(rows[0]!.id);
    },

    async flags(filter = {}) {
      const { rows } = await deps.sql.query<{
        id: string;
        at: Date;
        entity: string;
        client_id: string | null;
        signal: string;
        severity: ThreatFlag['severity'];
        kind: ThreatFlag['kind'];
        expected: number;
        seen: number;
        score: number | null;
        explanation: string;
        response: string;
      }>(`SELECT * FROM threat_flag WHERE ($1::text IS NULL OR client_id = $1) AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY id DESC LIMIT $3`, [
        filter.clientId ?? null,
        filter.since ?? null,
        Math.min(filter.limit ?? 100, 1000),
      ]);
      return rows.map((r) => ({
        id: Number(r.id),
        at: new Date(r.at),
        entity: r.entity,
        ...(r.client_id === null ? {} : { clientId: r.client_id }),
        signal: r.signal,
        severity: r.severity,
        kind: r.kind,
        expected: Number(r.expected),
        seen: Number(r.seen),
        ...(r.score === null ? {} : { score: Number(r.score) }),
        explanation: r.explanation,
        response: r.response,
      }));
    },

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

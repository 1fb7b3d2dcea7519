import type { Restriction, RestrictionKind, RestrictionStore, StoredFlag } from '../../threats/client-restrictions.ts';
import type { ThreatFlag } from '../../threats/detector.ts';
import type { SqlClient } from './sql-client.ts';

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

interface FlagRow {
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
}

function toFlag(r: FlagRow): StoredFlag {
  return {
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
  };
}

/** Client restrictions and threat flags in `client_restriction` and `threat_flag`. */
export function createSqlRestrictionStore(sql: SqlClient): RestrictionStore {
  return {
    async inForceAt(at) {
      const { rows } = await sql.query<RestrictionRow>('SELECT * FROM client_restriction WHERE released_at IS NULL AND (until IS NULL OR until > $1)', [at]);
      return rows.map(toRestriction);
    },

    async open(r) {
      // Expired step-ups are closed first, so the one-in-force index admits the new one.
      await sql.query(
        "UPDATE client_restriction SET released_at = $2, released_by = 'expired' WHERE client_id = $1 AND kind = $3 AND released_at IS NULL AND until IS NOT NULL AND until <= $2",
        [r.clientId, r.since, r.kind],
      );
      const { rows } = await sql.query<RestrictionRow>(
        `INSERT INTO client_restriction (client_id, kind, reason, flag_id, since, until, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (client_id, kind) WHERE released_at IS NULL DO NOTHING RETURNING *`,
        [r.clientId, r.kind, r.reason, r.flagId ?? null, r.since, r.until ?? null, r.createdBy],
      );
      return rows[0] === undefined ? undefined : toRestriction(rows[0]);
    },

    async openOf(clientId, kind) {
      const { rows } = await sql.query<RestrictionRow>('SELECT * FROM client_restriction WHERE client_id = $1 AND kind = $2 AND released_at IS NULL', [
        clientId,
        kind,
      ]);
      return toRestriction(rows[0]!);
    },

    async release(clientId, kind, at, by) {
      const { rows } = await sql.query<RestrictionRow>(
        'UPDATE client_restriction SET released_at = $3, released_by = $4 WHERE client_id = $1 AND kind = $2 AND released_at IS NULL RETURNING *',
        [clientId, kind, at, by],
      );
      return rows[0] === undefined ? undefined : toRestriction(rows[0]);
    },

    async list(filter) {
      const { rows } = await sql.query<RestrictionRow>(
        `SELECT * FROM client_restriction WHERE ($1::text IS NULL OR client_id = $1) AND ($2::boolean OR released_at IS NULL) ORDER BY id DESC LIMIT 500`,
        [filter.clientId ?? null, filter.includeReleased ?? false],
      );
      return rows.map(toRestriction);
    },

    async recordFlag(flag, response) {
      const { rows } = await sql.query<{ id: string }>(
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

    async flags(filter) {
      const { rows } = await sql.query<FlagRow>(
        `SELECT * FROM threat_flag WHERE ($1::text IS NULL OR client_id = $1) AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY id DESC LIMIT $3`,
        [filter.clientId ?? null, filter.since ?? null, Math.min(filter.limit ?? 100, 1000)],
      );
      return rows.map(toFlag);
    },
  };
}

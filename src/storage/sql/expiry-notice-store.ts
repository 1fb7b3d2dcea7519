import type { SqlClient } from './sql-client.ts';
import type { ExpiryNotice, ExpiryNoticeStore, NoticeStatus } from '../../certificates/expiry-notice-store.ts';

interface Row {
  thumbprint: string;
  client_id: string;
  horizon_days: number;
  endpoint: string | null;
  status: NoticeStatus;
  jti: string;
  days_left: number;
  attempts: number;
  next_attempt_at: Date | string;
  last_error: string | null;
  delivered_at: Date | string | null;
  created_at: Date | string;
}

function toNotice(r: Row): ExpiryNotice {
  return {
    thumbprint: r.thumbprint,
    clientId: r.client_id,
    horizonDays: r.horizon_days,
    status: r.status,
    jti: r.jti,
    daysLeft: r.days_left,
    attempts: r.attempts,
    nextAttemptAt: new Date(r.next_attempt_at),
    createdAt: new Date(r.created_at),
    ...(r.endpoint === null ? {} : { endpoint: r.endpoint }),
    ...(r.last_error === null ? {} : { lastError: r.last_error }),
    ...(r.delivered_at === null ? {} : { deliveredAt: new Date(r.delivered_at) }),
  };
}

/** Expiry notices on Postgres (pg or the embedded PGlite). */
export function createSqlExpiryNoticeStore(sql: SqlClient): ExpiryNoticeStore {
  return {
    async raise(n) {
      const { rowCount } = await sql.query(
        `INSERT INTO certificate_expiry_notice (thumbprint, client_id, horizon_days, endpoint, status, jti, days_left, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
        [n.thumbprint, n.clientId, n.horizonDays, n.endpoint ?? null, n.status, n.jti, n.daysLeft, n.nextAttemptAt, n.createdAt],
      );
      return rowCount > 0;
    },
    async claimDue(now, leaseSeconds, limit) {
      // SKIP LOCKED: two instances claiming at once each take different notices, never the same one.
      const { rows } = await sql.query<Row>(
        `UPDATE certificate_expiry_notice n SET claimed_until = $1::timestamptz + make_interval(secs => $2)
         FROM (SELECT thumbprint, client_id, horizon_days FROM certificate_expiry_notice
                WHERE status = 'pending' AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
                ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
         WHERE n.thumbprint = due.thumbprint AND n.client_id = due.client_id AND n.horizon_days = due.horizon_days
         RETURNING n.*`,
        [now, leaseSeconds, limit],
      );
      return rows.map(toNotice);
    },
    async recordAttempt(n, outcome) {
      const key = [n.thumbprint, n.clientId, n.horizonDays];
      if ('deliveredAt' in outcome) {
        await sql.query(
          `UPDATE certificate_expiry_notice SET status = 'delivered', attempts = attempts + 1, delivered_at = $4, last_error = NULL, claimed_until = NULL
           WHERE thumbprint = $1 AND client_id = $2 AND horizon_days = $3`,
          [...key, outcome.deliveredAt],
        );
        return;
      }
      await sql.query(
        `UPDATE certificate_expiry_notice SET attempts = attempts + 1, last_error = $4, claimed_until = NULL,
                status = CASE WHEN $5::timestamptz IS NULL THEN 'failed' ELSE status END,
                next_attempt_at = COALESCE($5::timestamptz, next_attempt_at)
         WHERE thumbprint = $1 AND client_id = $2 AND horizon_days = $3`,
        [...key, outcome.error, outcome.nextAttemptAt ?? null],
      );
    },
    async list(filter) {
      const { rows } = await sql.query<Row>(
        `SELECT * FROM certificate_expiry_notice
          WHERE ($1::text[] IS NULL OR client_id = ANY($1)) AND ($2::text[] IS NULL OR thumbprint = ANY($2))
          ORDER BY created_at DESC, horizon_days`,
        [filter.clientIds ?? null, filter.thumbprints ?? null],
      );
      return rows.map(toNotice);
    },
  };
}

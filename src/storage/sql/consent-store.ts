import { containsNul } from './postgres-model-store.ts';
import type { SqlClient } from './sql-client.ts';
import type { Acr, AuthenticationMethod } from '../../sca/authentication.ts';
import type { GrantedDetail, RequestedDetail } from '../../consents/authorization-details.ts';
import { ConsentNotFound, ConsentStateConflict, TRANSITIONS, type Consent, type ConsentEvent, type ConsentStatus } from '../../consents/consent.ts';
import type { ConsentPatch, ConsentStore } from '../../consents/consent-store.ts';

interface ConsentRow {
  id: string;
  kind: Consent['kind'];
  origin: Consent['origin'];
  client_id: string;
  status: ConsentStatus;
  customer_id: string | null;
  grant_id: string | null;
  requested: RequestedDetail | Record<string, never>;
  granted: GrantedDetail | null;
  scope: string;
  expires_at: Date | string | null;
  created_at: Date | string;
  status_updated_at: Date | string;
  sca_acr: Acr | null;
  sca_amr: AuthenticationMethod[] | null;
  sca_auth_time: Date | string | null;
  sca_link_hash: string | null;
}

const COLUMNS =
  'id, kind, origin, client_id, status, customer_id, grant_id, requested, granted, scope, expires_at, created_at, status_updated_at, sca_acr, sca_amr, sca_auth_time, sca_link_hash';

function toConsent(row: ConsentRow): Consent {
  return {
    id: row.id,
    kind: row.kind,
    origin: row.origin,
    clientId: row.client_id,
    status: row.status,
    ...(row.customer_id === null ? {} : { customerId: row.customer_id }),
    ...(row.grant_id === null ? {} : { grantId: row.grant_id }),
    ...(row.kind === 'scope' ? {} : { requested: row.requested as RequestedDetail }),
    ...(row.granted === null ? {} : { granted: row.granted }),
    scope: row.scope,
    ...(row.expires_at === null ? {} : { expiresAt: new Date(row.expires_at) }),
    ...(row.sca_acr === null || row.sca_auth_time === null
      ? {}
      : {
          authentication: {
            acr: row.sca_acr,
            amr: row.sca_amr ?? [],
            authTime: new Date(row.sca_auth_time),
            ...(row.sca_link_hash === null ? {} : { linkHash: row.sca_link_hash }),
          },
        }),
    createdAt: new Date(row.created_at),
    statusUpdatedAt: new Date(row.status_updated_at),
  };
}

/** The consent store on Postgres (pg or the embedded PGlite). */
export function createSqlConsentStore(sql: SqlClient): ConsentStore {
  const findOne = async (where: string, params: unknown[], client: SqlClient = sql) => {
    // Postgres text cannot hold NUL: such an id names nothing (and must not become a 500).
    if (containsNul(...params.filter((p): p is string => typeof p === 'string'))) return undefined;
    const { rows } = await client.query<ConsentRow>(`SELECT ${COLUMNS} FROM consent WHERE ${where}`, params);
    return rows[0] === undefined ? undefined : toConsent(rows[0]);
  };
  const recordEvent = (
    client: SqlClient,
    id: string,
    from: ConsentStatus | null,
    to: ConsentStatus,
    by: { actor: string; actorId?: string; reason?: string },
  ) =>
    client.query('INSERT INTO consent_event (consent_id, from_status, to_status, actor, actor_id, reason) VALUES ($1, $2, $3, $4, $5, $6)', [
      id,
      from,
      to,
      by.actor,
      by.actorId ?? null,
      by.reason ?? null,
    ]);

  /** Applies `patch` and records the event (a status change, or an amendment that keeps the status). */
  const update = async (tx: SqlClient, current: Consent, to: ConsentStatus, by: { actor: string; actorId?: string; reason?: string }, patch: ConsentPatch) => {
    const { id } = current;
    const { rows } = await tx.query<ConsentRow>(
      `UPDATE consent SET status = $2, status_updated_at = now(),
         customer_id = COALESCE($3, customer_id), grant_id = COALESCE($4, grant_id),
         granted = COALESCE($5, granted), scope = COALESCE($6, scope), expires_at = COALESCE($7, expires_at),
         sca_acr = COALESCE($8, sca_acr), sca_amr = COALESCE($9, sca_amr), sca_auth_time = COALESCE($10, sca_auth_time),
         sca_link = COALESCE($11, sca_link), sca_link_hash = COALESCE($12, sca_link_hash)
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [
        id,
        to,
        patch.customerId ?? null,
        patch.grantId ?? null,
        patch.granted === undefined ? null : JSON.stringify(patch.granted),
        patch.scope ?? null,
        patch.expiresAt ?? null,
        patch.authentication?.acr ?? null,
        patch.authentication === undefined ? null : JSON.stringify(patch.authentication.amr),
        patch.authentication?.authTime ?? null,
        patch.authentication?.link === undefined ? null : JSON.stringify(patch.authentication.link),
        patch.authentication?.linkHash ?? null,
      ],
    );
    await recordEvent(tx, id, current.status, to, by);
    return toConsent(rows[0]!);
  };

  return {
    async create(consent, by) {
      return sql.transaction(async (tx) => {
        const { rows } = await tx.query<ConsentRow>(
          `INSERT INTO consent (id, kind, origin, client_id, status, requested, scope, expires_at, idempotency_key, request_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${COLUMNS}`,
          [
            consent.id,
            consent.kind,
            consent.origin,
            consent.clientId,
            consent.status,
            JSON.stringify(consent.requested ?? {}),
            consent.scope,
            consent.expiresAt ?? null,
            consent.idempotency?.key ?? null,
            consent.idempotency?.requestHash ?? null,
          ],
        );
        await recordEvent(tx, consent.id, null, consent.status, by);
        return toConsent(rows[0]!);
      });
    },
    find: (id) => findOne('id = $1', [id]),
    findByGrantId: (grantId) => findOne('grant_id = $1', [grantId]),
    async findByIdempotencyKey(clientId, key) {
      if (containsNul(clientId, key)) return undefined;
      const { rows } = await sql.query<ConsentRow & { request_hash: string }>(
        `SELECT ${COLUMNS}, request_hash FROM consent WHERE client_id = $1 AND idempotency_key = $2`,
        [clientId, key],
      );
      return rows[0] === undefined ? undefined : { consent: toConsent(rows[0]), requestHash: rows[0].request_hash };
    },
    async listForCustomer(customerId) {
      if (containsNul(customerId)) return [];
      // With the last use the TPP made of each (consent_use), for the dashboard.
      const { rows } = await sql.query<ConsentRow & { last_used_at: Date | string | null }>(
        `SELECT ${COLUMNS}, u.last_used_at FROM consent LEFT JOIN consent_use u ON u.consent_id = consent.id
          WHERE customer_id = $1 ORDER BY status_updated_at DESC, id`,
        [customerId],
      );
      return rows.map((row) => ({ ...toConsent(row), ...(row.last_used_at === null ? {} : { lastUsedAt: new Date(row.last_used_at) }) }));
    },
    async recordUse(grantId, at) {
      if (containsNul(grantId)) return;
      await sql.query(
        `INSERT INTO consent_use (consent_id, last_used_at) SELECT id, $2 FROM consent WHERE grant_id = $1
          ON CONFLICT (consent_id) DO UPDATE SET last_used_at = excluded.last_used_at WHERE consent_use.last_used_at < excluded.last_used_at`,
        [grantId, at],
      );
    },
    async listForClient(clientId, status) {
      if (containsNul(clientId)) return [];
      const { rows } = await sql.query<ConsentRow>(
        `SELECT ${COLUMNS} FROM consent WHERE client_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY created_at, id`,
        [clientId, status ?? null],
      );
      return rows.map(toConsent);
    },
    transition: (id, to, by, patch = {}) =>
      sql.transaction(async (tx) => {
        const current = await findOne('id = $1 FOR UPDATE', [id], tx);
        if (current === undefined) throw new ConsentNotFound(id);
        if (!TRANSITIONS[current.status].includes(to)) throw new ConsentStateConflict(id, current.status, to);
        return update(tx, current, to, by, patch);
      }),
    amend: (id, by, patch) =>
      sql.transaction(async (tx) => {
        const current = await findOne('id = $1 FOR UPDATE', [id], tx);
        if (current === undefined) throw new ConsentNotFound(id);
        if (current.status !== 'Authorised') throw new ConsentStateConflict(id, current.status, 'Authorised');
        return update(tx, current, 'Authorised', by, patch);
      }),
    async events(id) {
      const { rows } = await sql.query<{
        consent_id: string;
        from_status: ConsentStatus | null;
        to_status: ConsentStatus;
        actor: ConsentEvent['actor'];
        actor_id: string | null;
        reason: string | null;
        at: Date | string;
      }>('SELECT consent_id, from_status, to_status, actor, actor_id, reason, at FROM consent_event WHERE consent_id = $1 ORDER BY id', [id]);
      return rows.map((r) => ({
        consentId: r.consent_id,
        ...(r.from_status === null ? {} : { fromStatus: r.from_status }),
        toStatus: r.to_status,
        actor: r.actor,
        ...(r.actor_id === null ? {} : { actorId: r.actor_id }),
        ...(r.reason === null ? {} : { reason: r.reason }),
        at: new Date(r.at),
      }));
    },
    async dueForExpiry(now, limit) {
      const { rows } = await sql.query<ConsentRow>(
        `SELECT ${COLUMNS} FROM consent WHERE status = 'Authorised' AND expires_at <= $1 ORDER BY expires_at LIMIT ${Math.trunc(limit)}`,
        [now],
      );
      return rows.map(toConsent);
    },
  };
}

/** The consents in force (status Authorised), for the `moat_consents_active` gauge. */
export async function countAuthorisedConsents(sql: SqlClient): Promise<number> {
  const { rows } = await sql.query<{ n: string }>("SELECT count(*) AS n FROM consent WHERE status = 'Authorised'");
  return Number(rows[0]?.n ?? 0);
}

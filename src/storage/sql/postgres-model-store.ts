import type { AdapterPayload } from 'oidc-provider';
import type { ConsumeResult, ModelStore } from '../../kernel/model-store.ts';
import type { SqlClient } from './sql-client.ts';

/**
 * Whether any of the values contains a NUL: the guard of a lookup. Postgres text cannot hold NUL, so
 * no stored key contains one, and a query with one would fail with an encoding error; a lookup by
 * such a key is simply not found, without asking. (What is stored is checked at the edge:
 * http/storable-text.ts.)
 */
export function containsNul(...values: string[]): boolean {
  return values.some((v) => v.includes('\u0000'));
}

/** Rows purged per statement, so a large backlog never holds long locks. */
const PURGE_BATCH = 1000;

/**
 * oidc-provider models in Postgres (pg or PGlite). Expired rows are invisible to `find` at once and
 * deleted by `purgeExpired`; `consume` is a single conditional UPDATE, so of any number of
 * concurrent calls exactly one sees its row change.
 */
export function createPostgresModelStore(sql: SqlClient): ModelStore {
  const live = 'AND (expires_at IS NULL OR expires_at > now())';
  const one = async (where: string, params: string[]): Promise<AdapterPayload | undefined> => {
    if (containsNul(...params)) return undefined;
    const { rows } = await sql.query<{ payload: AdapterPayload }>(`SELECT payload FROM oidc_model WHERE ${where} ${live} LIMIT 1`, params);
    return rows[0]?.payload;
  };
  return {
    async upsert(model, id, payload, expiresIn) {
      await sql.query(
        `INSERT INTO oidc_model (model, id, payload, grant_id, uid, user_code, expires_at, consumed_at)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::int IS NULL THEN NULL ELSE now() + make_interval(secs => $7::int) END, NULL)
         ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = EXCLUDED.grant_id, uid = EXCLUDED.uid,
           user_code = EXCLUDED.user_code, expires_at = EXCLUDED.expires_at, consumed_at = NULL`,
        [model, id, JSON.stringify(payload), payload.grantId ?? null, payload.uid ?? null, payload.userCode ?? null, expiresIn ?? null],
      );
    },
    find: (model, id) => one('model = $1 AND id = $2', [model, id]),
    findByUid: (model, uid) => one('model = $1 AND uid = $2', [model, uid]),
    findByUserCode: (model, userCode) => one('model = $1 AND user_code = $2', [model, userCode]),
    async recordOnce(model, id, payload, expiresIn) {
      if (containsNul(id)) return false;
      // The conflict branch only takes over an expired row (purgeExpired may not have run yet); a
      // live one makes the statement change nothing, and Postgres serialises racing inserts on the key.
      const { rowCount } = await sql.query(
        `INSERT INTO oidc_model (model, id, payload, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4::int))
         ON CONFLICT (model, id) DO UPDATE SET payload = EXCLUDED.payload, grant_id = NULL, uid = NULL, user_code = NULL,
           expires_at = EXCLUDED.expires_at, consumed_at = NULL
         WHERE oidc_model.expires_at IS NOT NULL AND oidc_model.expires_at <= now()`,
        [model, id, JSON.stringify(payload), Math.ceil(expiresIn)],
      );
      return rowCount === 1;
    },
    async consume(model, id): Promise<ConsumeResult> {
      if (containsNul(id)) return 'absent';
      const now = Math.floor(Date.now() / 1000);
      const { rowCount } = await sql.query(
        `UPDATE oidc_model SET consumed_at = now(), payload = jsonb_set(payload, '{consumed}', to_jsonb($3::int))
         WHERE model = $1 AND id = $2 AND consumed_at IS NULL ${live}`,
        [model, id, now],
      );
      if (rowCount === 1) return 'consumed';
      const { rows } = await sql.query(`SELECT 1 FROM oidc_model WHERE model = $1 AND id = $2 ${live}`, [model, id]);
      return rows.length > 0 ? 'already-consumed' : 'absent';
    },
    async destroy(model, id) {
      if (containsNul(id)) return;
      await sql.query('DELETE FROM oidc_model WHERE model = $1 AND id = $2', [model, id]);
    },
    async revokeByGrantId(model, grantId) {
      if (containsNul(grantId)) return;
      await sql.query('DELETE FROM oidc_model WHERE model = $1 AND grant_id = $2', [model, grantId]);
    },
    async purgeExpired() {
      let total = 0;
      for (;;) {
        const { rowCount } = await sql.query(
          `DELETE FROM oidc_model WHERE ctid IN (SELECT ctid FROM oidc_model WHERE expires_at <= now() LIMIT ${PURGE_BATCH})`,
        );
        total += rowCount;
        if (rowCount < PURGE_BATCH) return total;
      }
    },
    async ping() {
      await sql.query('SELECT 1');
    },
    close: () => sql.close(),
  };
}

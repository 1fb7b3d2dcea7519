import type { SigningAlgorithm } from '../../config/schema.ts';
import type { KeyState } from '../../keys/key-lifecycle.ts';
import type { KeyTransition, SharedKey } from '../../keys/key-rotation.ts';
import type { SigningKeyStore } from '../../keys/shared-signing-keys.ts';
import type { SqlClient } from './sql-client.ts';

/*
 * The shared signing keys on Postgres or the embedded PGlite (table signing_key). Transitions are
 * applied under an advisory lock, so two instances finding the same rotation due make it once; the
 * table's trigger announces each change at commit (topic `signing-keys` of the invalidation bus),
 * so every instance reloads within moments.
 */
/** Serialises changes to the keys across every instance. */
const KEYS_LOCK = 0x6d6f6174_6b657973n; // "moatkeys"

interface Row {
  kid: string;
  alg: string;
  state: string;
  public_jwk: SharedKey['publicJwk'];
  private_jwk_sealed: string;
  created_at: Date | string;
  activate_at: Date | string | null;
  activated_at: Date | string | null;
  retired_at: Date | string | null;
}

const epoch = (v: Date | string) => Math.floor(new Date(v).getTime() / 1000);
const timestamp = (seconds: number) => new Date(seconds * 1000);

function fromRow(r: Row): SharedKey {
  return {
    kid: r.kid,
    alg: r.alg as SigningAlgorithm,
    moat_state: r.state as KeyState,
    moat_created_at: epoch(r.created_at),
    ...(r.activate_at === null ? {} : { moat_activate_at: epoch(r.activate_at) }),
    ...(r.activated_at === null ? {} : { moat_activated_at: epoch(r.activated_at) }),
    ...(r.retired_at === null ? {} : { moat_retired_at: epoch(r.retired_at) }),
    publicJwk: r.public_jwk,
    sealedPrivateJwk: r.private_jwk_sealed,
  };
}

/** Whose keys a row holds: sealed in the row (database), or in the bank's HSM (pkcs11, the row holds the lifecycle). */
export type SigningKeyRowSource = 'database' | 'pkcs11';

async function listKeys(sql: SqlClient, source: SigningKeyRowSource): Promise<SharedKey[]> {
  const { rows } = await sql.query<Row>('SELECT * FROM signing_key WHERE source = $1 ORDER BY created_at, alg, kid', [source]);
  return rows.map(fromRow);
}

async function apply(tx: SqlClient, source: SigningKeyRowSource, t: KeyTransition): Promise<void> {
  switch (t.kind) {
    case 'generated':
    case 'staged':
    case 'adopted': {
      const k = t.key;
      await tx.query(
        `INSERT INTO signing_key (kid, alg, state, public_jwk, private_jwk_sealed, created_at, activate_at, activated_at, retired_at, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          k.kid,
          k.alg,
          k.moat_state,
          JSON.stringify(k.publicJwk),
          k.sealedPrivateJwk,
          timestamp(k.moat_created_at),
          k.moat_activate_at === undefined ? null : timestamp(k.moat_activate_at),
          k.moat_activated_at === undefined ? null : timestamp(k.moat_activated_at),
          k.moat_retired_at === undefined ? null : timestamp(k.moat_retired_at),
          source,
        ],
      );
      return;
    }
    case 'scheduled':
      await tx.query("UPDATE signing_key SET activate_at = $2 WHERE kid = $1 AND state = 'next' AND source = $3", [t.kid, timestamp(t.activateAt), source]);
      return;
    case 'retired':
      await tx.query("UPDATE signing_key SET state = 'retired', retired_at = $2, activate_at = NULL WHERE kid = $1 AND source = $3", [
        t.kid,
        timestamp(t.at),
        source,
      ]);
      return;
    case 'activated':
      await tx.query("UPDATE signing_key SET state = 'active', activated_at = $2, activate_at = NULL, retired_at = NULL WHERE kid = $1 AND source = $3", [
        t.kid,
        timestamp(t.at),
        source,
      ]);
      return;
    case 'removed':
      await tx.query("DELETE FROM signing_key WHERE kid = $1 AND state = 'retired' AND source = $2", [t.kid, source]);
  }
}

/** The keys of `source` (database: sealed keys; pkcs11: the lifecycle of the token's keys). */
export function createSqlSigningKeyStore(sql: SqlClient, source: SigningKeyRowSource = 'database'): SigningKeyStore {
  return {
    list: () => listKeys(sql, source),
    change: (plan) =>
      sql.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [KEYS_LOCK.toString()]);
        const transitions = await plan(await listKeys(tx, source));
        for (const t of transitions) await apply(tx, source, t);
        return transitions;
      }),
  };
}

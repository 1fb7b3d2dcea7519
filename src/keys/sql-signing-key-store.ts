import type { SigningAlgorithm } from '../config/schema.ts';
import type { KeyState } from './key-lifecycle.ts';
import type { KeyTransition, SharedKey } from './key-rotation.ts';
import type { SigningKeyStore } from './shared-signing-keys.ts';
import type { SqlClient } from '../storage/sql/sql-client.ts';

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
    kid: r.kid, alg: r.alg as SigningAlgorithm, moat_state: r.state as KeyState, moat_created_at: epoch(r.created_at),
    ...(r.activate_at === null ? {} : { moat_activate_at: epoch(r.activate_at) }),
    ...(r.activated_at === null ? {} : { moat_activated_at: epoch(r.activated_at) }),
    ...(r.retired_at === null ? {} : { moat_retired_at: epoch(r.retired_at) }),
    publicJwk: r.public_jwk, sealedPrivateJwk: r.private_jwk_sealed,
  };
}

async function listKeys(sql: SqlClient): Promise<SharedKey[]> {
  const { rows } = await sql.query<Row>('SELECT * FROM signing_key ORDER BY created_at, alg, kid');
  return rows.map(fromRow);
}

async function apply(tx: SqlClient, t: KeyTransition): Promise<void> {
  switch (t.kind) {
    case 'generated':
    case 'staged': {
      const k = t.key;
      await tx.query(
        `INSERT INTO signing_key (kid, alg, state, public_jwk, private_jwk_sealed, created_at, activate_at, activated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [k.kid, k.alg, k.moat_state, JSON.stringify(k.publicJwk), k.sealedPrivateJwk, timestamp(k.moat_created_at),
          k.moat_activate_at === undefined ? null : timestamp(k.moat_activate_at), k.moat_activated_at === undefined ? null : timestamp(k.moat_activated_at)],
      );
      return;
    }
    case 'scheduled':
      await tx.query("UPDATE signing_key SET activate_at = $2 WHERE kid = $1 AND state = 'next'", [t.kid, timestamp(t.activateAt)]);
      return;
    case 'retired':
      await tx.query("UPDATE signing_key SET state = 'retired', retired_at = $2, activate_at = NULL WHERE kid = $1", [t.kid, timestamp(t.at)]);
      return;
    case 'activated':
      await tx.query("UPDATE signing_key SET state = 'active', activated_at = $2, activate_at = NULL, retired_at = NULL WHERE kid = $1", [t.kid, timestamp(t.at)]);
      return;
    case 'removed':
      await tx.query("DELETE FROM signing_key WHERE kid = $1 AND state = 'retired'", [t.kid]);
  }
}

export function createSqlSigningKeyStore(sql: SqlClient): SigningKeyStore {
  return {
    list: () => listKeys(sql),
    change: (plan) => sql.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [KEYS_LOCK.toString()]);
      const transitions = await plan(await listKeys(tx));
      for (const t of transitions) await apply(tx, t);
      return transitions;
    }),
  };
}

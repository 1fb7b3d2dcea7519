import type { InstanceStore, RunningInstance } from '../../deployment/instance-heartbeat.ts';
import type { SqlClient } from './sql-client.ts';

interface Row {
  instance_id: string;
  config_hash: string;
  hostname: string;
  pid: number;
  started_at: Date | string;
  last_seen_at: Date | string;
}

function toInstance(r: Row): RunningInstance {
  return {
    instanceId: r.instance_id,
    configHash: r.config_hash,
    hostname: r.hostname,
    pid: r.pid,
    startedAt: new Date(r.started_at),
    lastSeenAt: new Date(r.last_seen_at),
  };
}

export function createSqlInstanceStore(sql: SqlClient): InstanceStore {
  return {
    async record(i) {
      await sql.query(
        `INSERT INTO moat_instance (instance_id, config_hash, hostname, pid, started_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (instance_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at, config_hash = EXCLUDED.config_hash`,
        [i.instanceId, i.configHash, i.hostname, i.pid, i.startedAt, i.lastSeenAt],
      );
    },

    async seenSince(since) {
      const { rows } = await sql.query<Row>('SELECT * FROM moat_instance WHERE last_seen_at >= $1 ORDER BY started_at DESC', [since]);
      return rows.map(toInstance);
    },

    async forgetUnseenSince(before) {
      await sql.query('DELETE FROM moat_instance WHERE last_seen_at < $1', [before]);
    },

    async forget(instanceId) {
      await sql.query('DELETE FROM moat_instance WHERE instance_id = $1', [instanceId]);
    },
  };
}

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { createAuditLog, type AuditLog } from '../audit/audit-log.ts';
import { createSqlAuditStore } from '../storage/sql/audit-store.ts';
import type { MoatConfig } from '../config/schema.ts';
import { createStorage, type Storage } from '../storage/create-storage.ts';
import { EXIT_FAILURE, type CliIo } from './io.ts';

/**
 * For `--direct`: opens the configured database itself (when no server is running to ask), with an
 * audit log on it so what the operator changes is audited like everyone else's, and closes it after.
 * A database that cannot be opened (the embedded one held by a running server) is reported, exit 1.
 */
export async function withDirectDatabase(
  config: MoatConfig,
  io: CliIo,
  run: (db: { sql: Storage['sql']; audit: AuditLog }) => Promise<number>,
): Promise<number> {
  // Opening a missing embedded database would make an empty one and answer from it.
  if (config.storage.postgresUrl === undefined && !existsSync(join(config.dataDir, 'pglite'))) {
    io.stderr.write(`moat: no embedded database under ${config.dataDir}: run this where the server runs, or pass its data directory with --data-dir DIR\n`);
    return EXIT_FAILURE;
  }
  let storage;
  try {
    storage = await createStorage(config);
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n`);
    return EXIT_FAILURE;
  }
  try {
    return await run({ sql: storage.sql, audit: createAuditLog(createSqlAuditStore(storage.sql), pino({ level: 'silent' })) });
  } finally {
    await storage.close();
  }
}

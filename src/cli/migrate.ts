import { createStorage } from '../storage/create-storage.ts';
import { applyMigrations } from '../storage/sql/migrate.ts';
import type { CliIo } from './io.ts';
import { loadConfigOrReport } from './load-config-or-report.ts';

export const USAGE = `usage: moat migrate [--config FILE] [--data-dir DIR]
  applies pending database migrations (for release pipelines with storage.migrateOnStart off)
  --data-dir DIR    the server's data directory, for the embedded database (default: dataDir, ./data)
`;

/** `moat migrate`: applies pending migrations (for release pipelines with migrateOnStart off). */
export async function migrateCommand(args: string[], io: CliIo): Promise<number> {
  const result = loadConfigOrReport(args, io);
  if ('exitCode' in result) return result.exitCode;
  const config = { ...result.loaded.config, storage: { ...result.loaded.config.storage, migrateOnStart: false } };
  let storage;
  try {
    storage = await createStorage(config);
  } catch (err) {
    io.stderr.write(`moat: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    const { applied } = await applyMigrations(storage.sql);
    io.stdout.write(applied.length === 0 ? 'migrations: up to date\n' : `migrations applied: ${applied.join(', ')}\n`);
    return 0;
  } finally {
    await storage.close();
  }
}

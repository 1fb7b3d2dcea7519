import { pino } from 'pino';
import { createAuditLog, MAX_QUEUED, type AuditLog } from '../../src/audit/audit-log.ts';
import { createSqlAuditStore } from '../../src/storage/sql/audit-store.ts';
import { applyMigrations } from '../../src/storage/sql/migrate.ts';
import { createPgSqlClient, type SqlClient } from '../../src/storage/sql/sql-client.ts';
import { postgresBinaries, startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';

/*
 * The audit log is written off the response path, so Postgres going away must not cost a record:
 * what could not be written waits in a bounded queue and is written, in order and chained, once
 * Postgres is back; while the queue is full, room() holds new requests back instead of dropping
 * anything. The test runs its own Postgres, never the shared one.
 */

const bin = postgresBinaries();
if (bin === undefined && process.env.TEST_MOAT_REQUIRE_SERVICES === '1') throw new Error('the Postgres server binaries (initdb, pg_ctl) are required in CI');

(bin === undefined ? describe.skip : describe)('the audit log during a Postgres outage', () => {
  let pg: PrivatePostgres;
  let sql: SqlClient;
  let audit: AuditLog;
  const events: string[] = [];
  let onEvent: ((event: string) => void) | undefined;

  beforeAll(async () => {
    pg = await startPrivatePostgres(bin!);
    sql = createPgSqlClient(pg.url);
    await applyMigrations(sql);
    audit = createAuditLog(
      createSqlAuditStore(sql),
      pino(
        { level: 'warn' },
        {
          write: (line: string) => {
            const event = (JSON.parse(line) as { event: string }).event;
            events.push(event);
            onEvent?.(event);
          },
        },
      ),
    );
  });
  afterAll(async () => {
    await sql?.close();
    await pg?.destroy();
  });

  it('queues what it cannot write, holds requests back when the queue is full, and writes everything in order once Postgres is back', async () => {
    await pg.stop('immediate');
    const waiting = new Promise<void>((resolve) => {
      onEvent = (event) => {
        if (event === 'audit.waiting_for_storage') resolve();
      };
    });
    const recorded = Array.from({ length: MAX_QUEUED }, (_, i) =>
      audit.record({ type: 'token.issued', actor: 'system', clientId: 'client-outage', subject: `o-${i}` }),
    );
    let roomGiven = false;
    const room = audit.room().then(() => {
      roomGiven = true;
    });
    // An append was tried and found Postgres away; nothing was dropped, so the queue is still full.
    await waiting;
    expect(roomGiven).toBe(false);

    await pg.start();
    await Promise.all(recorded);
    await room;
    expect(roomGiven).toBe(true);
    expect(events).not.toContain('audit.write_failed');
    expect(await audit.verify()).toEqual(expect.objectContaining({ intact: true, records: MAX_QUEUED }));
    const written = await audit.query({ clientId: 'client-outage', limit: MAX_QUEUED });
    expect(written.map((r) => r.subject)).toEqual(Array.from({ length: MAX_QUEUED }, (_, i) => `o-${i}`));
  });
});

import { pino } from 'pino';
import { canonicalJson, createAuditLog, GENESIS_HASH, type AuditLog } from '../../src/audit/audit-log.ts';
import { createSqlAuditStore } from '../../src/storage/sql/audit-store.ts';
import type { SqlClient } from '../../src/storage/sql/sql-client.ts';
import { migratedSqlBackends } from '../support/databases.ts';

/*
 * The audit log on every SQL backend: append-only (the database refuses updates and deletes),
 * hash-chained in one order even when instances write at once, and a verification that names the
 * first record that was changed, removed or inserted.
 */

const backends = migratedSqlBackends();

/** The same client, counting the transactions run through it (an append is one). */
function countTransactions(sql: SqlClient): { sql: SqlClient; transactions: () => number } {
  let count = 0;
  const counted = Object.create(sql) as SqlClient;
  counted.transaction = (fn) => {
    count += 1;
    return sql.transaction(fn);
  };
  return { sql: counted, transactions: () => count };
}

it('hashes canonical JSON: key order does not matter, values do', () => {
  expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: 'x' } })).toBe('{"a":{"c":"x","d":[1,{"e":3,"f":2}]},"b":1}');
  expect(canonicalJson({ a: undefined, b: null })).toBe('{"b":null}');
});

describe.each(backends)('the audit log on %s', (_name, open) => {
  let sql: SqlClient;
  let drop: () => Promise<void>;
  let audit: AuditLog;
  beforeAll(async () => {
    ({ sql, drop } = await open());
    audit = createAuditLog(createSqlAuditStore(sql), pino({ level: 'silent' }));
  });
  afterAll(() => drop());

  it('chains records written at once into one verifiable order', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        audit.record({
          type: i % 2 === 0 ? 'consent.granted' : 'token.issued',
          actor: 'customer',
          clientId: `client-${i % 3}`,
          customerId: 'cust-alice',
          subject: `s-${i}`,
          detail: { i, nested: { z: 1, a: 2 } },
        }),
      ),
    );
    const verdict = await audit.verify();
    expect(verdict).toEqual({ intact: true, records: 20, head: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const all = await audit.query({});
    expect(all[0]!.prevHash).toBe(GENESIS_HASH);
    for (let i = 1; i < all.length; i += 1) expect(all[i]!.prevHash).toBe(all[i - 1]!.hash);
  });

  it('appends a burst in few transactions, and an unwritable event alone is lost', async () => {
    const counted = countTransactions(sql);
    const logged: unknown[] = [];
    const burst = createAuditLog(createSqlAuditStore(counted.sql), pino({ level: 'error' }, { write: (line: string) => logged.push(JSON.parse(line)) }));
    const other = createAuditLog(createSqlAuditStore(sql), pino({ level: 'silent' }));
    const before = (await audit.verify()).records;
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => burst.record({ type: 'token.issued', actor: 'system', clientId: 'client-burst', subject: `b-${i}` })),
    );
    expect(counted.transactions()).toBeGreaterThan(0);
    expect(counted.transactions()).toBeLessThan(5);
    await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => burst.record({ type: 'token.issued', actor: 'system', clientId: 'client-burst', subject: `b-${50 + i}` })),
      // Another instance appending at the same time: one chain still.
      ...Array.from({ length: 20 }, (_, i) => other.record({ type: 'token.issued', actor: 'system', clientId: 'client-other', subject: `o-${i}` })),
      // Postgres' JSON refuses a NUL: this event cannot be written, the rest of its batch must be.
      burst.record({ type: 'admin.action', actor: 'operator', detail: { note: 'nul\u0000here' } }),
    ]);
    await burst.drain();
    // The poisoned batch is halved until the NUL stands alone: a few more transactions, not one per event.
    expect(counted.transactions()).toBeLessThan(20);
    expect(await audit.verify()).toEqual(expect.objectContaining({ intact: true, records: before + 120 }));
    expect((await audit.query({ clientId: 'client-burst' })).map((r) => r.subject)).toEqual(Array.from({ length: 100 }, (_, i) => `b-${i}`));
    expect(logged).toEqual([expect.objectContaining({ event: 'audit.write_failed', auditType: 'admin.action' })]);
  });

  // On PGlite one connection runs every transaction in turn, so only the Postgres run races.
  it('keeps one chain when four instances append at once, each batch racing the others for the head', async () => {
    const before = (await audit.verify()).records;
    const instances = Array.from({ length: 4 }, () => createAuditLog(createSqlAuditStore(sql), pino({ level: 'silent' })));
    for (let wave = 0; wave < 3; wave += 1) {
      await Promise.all(
        instances.flatMap((log, n) =>
          Array.from({ length: 10 }, (_, i) => log.record({ type: 'token.issued', actor: 'system', clientId: `client-race-${n}`, subject: `${wave}-${i}` })),
        ),
      );
    }
    expect(await audit.verify()).toEqual(expect.objectContaining({ intact: true, records: before + 120 }));
    for (let n = 0; n < 4; n += 1) expect(await audit.query({ clientId: `client-race-${n}` })).toHaveLength(30);
  });

  it('is queried by TPP, customer, type and time', async () => {
    expect((await audit.query({ clientId: 'client-1' })).every((r) => r.clientId === 'client-1')).toBe(true);
    expect(await audit.query({ customerId: 'cust-alice', type: 'token.issued' })).toHaveLength(10);
    expect(await audit.query({ clientId: 'client-other' })).toHaveLength(20);
    expect(await audit.query({ since: new Date(Date.now() + 60_000) })).toEqual([]);
    expect(await audit.query({ until: new Date(Date.now() + 60_000), limit: 3 })).toHaveLength(3);
  });

  it('refuses updates and deletes in the database itself', async () => {
    await expect(sql.query("UPDATE audit_event SET type = 'admin.action' WHERE seq = 1")).rejects.toThrow(/append-only/);
    await expect(sql.query('DELETE FROM audit_event WHERE seq = 1')).rejects.toThrow(/append-only/);
  });

  it('names the first record changed behind its back, and the first one removed', async () => {
    // Someone with the power to disable the trigger (a DBA, an attacker with superuser) edits a record.
    await sql.exec('ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update');
    await sql.query(`UPDATE audit_event SET detail = '{"i": 999}' WHERE seq = 5`);
    expect(await audit.verify()).toEqual({ intact: false, records: 4, brokenAt: 5, reason: 'the record does not match its hash (it was changed)' });
    await sql.query('DELETE FROM audit_event WHERE seq = 5');
    expect(await audit.verify()).toEqual({
      intact: false,
      records: 4,
      brokenAt: 6,
      reason: 'prev_hash does not match the previous record (a record was removed or inserted)',
    });
    await sql.exec('ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update');
  });
});

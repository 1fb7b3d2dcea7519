import { createInvalidatingCache } from '../../src/caching/invalidating-cache.ts';
import type { InvalidationBus } from '../../src/caching/invalidation.ts';
import { createPgInvalidationBus, INVALIDATION_APPLICATION_NAME } from '../../src/storage/sql/pg-invalidation-bus.ts';
import { createPostgresModelStore } from '../../src/storage/sql/postgres-model-store.ts';
import { createPgSqlClient, type SqlClient } from '../../src/storage/sql/sql-client.ts';
import { createMigratedThrowawayPostgres, describeWithServices } from '../support/databases.ts';
import { heard } from '../support/invalidation.ts';
import pg from 'pg';

/*
 * Cross-instance invalidation over Postgres LISTEN/NOTIFY: a change committed by anyone (here plain
 * SQL on another connection, as the moat CLI or an operator would) is announced by the triggers of
 * migrations/20261206500000_cache_invalidation.sql and makes every instance's cache forget it; a
 * lost subscription empties the caches until it is back.
 */

describeWithServices('the Postgres invalidation bus', () => {
  let db: Awaited<ReturnType<typeof createMigratedThrowawayPostgres>>;
  let sql: SqlClient;
  let bus: InvalidationBus;
  const states: boolean[] = [];
  let stateChanged: (() => void) | undefined;

  beforeAll(async () => {
    db = await createMigratedThrowawayPostgres();
    sql = createPgSqlClient(db.url);
    bus = await createPgInvalidationBus(db.url, {
      onState: (live) => {
        states.push(live);
        stateChanged?.();
      },
    });
  });
  afterAll(async () => {
    await bus?.close();
    await sql?.close();
    await db?.drop();
  });

  it('listens from the start', () => {
    expect(bus.live).toBe(true);
  });

  it('makes a cache forget a client changed by another connection, at commit', async () => {
    const store = createPostgresModelStore(sql);
    await store.upsert('Client', 'tpp-1', { client_id: 'tpp-1', redirect_uris: ['https://a.example/cb'] });
    const cache = createInvalidatingCache<unknown>({ bus, topic: 'client', maxEntries: 10, maxAgeMs: 60_000 });
    const read = () => cache.get('tpp-1', () => store.find('Client', 'tpp-1'));
    expect(await read()).toEqual(expect.objectContaining({ redirect_uris: ['https://a.example/cb'] }));
    const announced = heard(bus, 'client', 'tpp-1');
    await sql.query(
      "UPDATE oidc_model SET payload = jsonb_set(payload, '{redirect_uris}', '[\"https://b.example/cb\"]') WHERE model = 'Client' AND id = 'tpp-1'",
    );
    await announced;
    expect(await read()).toEqual(expect.objectContaining({ redirect_uris: ['https://b.example/cb'] }));
    const deleted = heard(bus, 'client', 'tpp-1');
    await sql.query("DELETE FROM oidc_model WHERE model = 'Client' AND id = 'tpp-1'");
    await deleted;
    expect(await read()).toBeUndefined();
    cache.close();
  });

  it('announces a certificate status change and a consent change by their keys', async () => {
    await sql.query("INSERT INTO tpp_organisation (org_id, name, directory_issuer, status) VALUES ('org-1', 'Org', 'https://directory.example', 'active')");
    const inserted = heard(bus, 'certificate', 'thumb-1');
    await sql.query(
      `INSERT INTO tpp_certificate (thumbprint, org_id, subject_dn, issuer_dn, serial, not_before, not_after, pem, usage)
       VALUES ('thumb-1', 'org-1', 'CN=a', 'CN=ca', '01', now(), now() + interval '1 day', 'pem', 'transport')`,
    );
    await inserted;
    const revoked = heard(bus, 'certificate', 'thumb-1');
    await sql.query("UPDATE tpp_certificate SET status = 'revoked' WHERE thumbprint = 'thumb-1'");
    await revoked;
    const granted = heard(bus, 'consent-grant', 'grant-1');
    await sql.query(
      `INSERT INTO consent (id, kind, origin, client_id, status, requested, scope, grant_id)
       VALUES ('sc-1', 'scope', 'scope', 'tpp-1', 'Authorised', '{}', 'accounts', 'grant-1')`,
    );
    await granted;
  });

  it('publishes announcements made at once one after another on its connection, every one heard', async () => {
    // pg queues a query sent on a client still running another, with a DeprecationWarning; pg 9 drops
    // the queue. Counted on pg's own Client (the queries still run): never two at once on one client.
    const query = pg.Client.prototype.query;
    const inFlight = new WeakMap<object, number>();
    let mostAtOnce = 0;
    pg.Client.prototype.query = function (this: object, ...args: unknown[]) {
      const result = (query as (...a: unknown[]) => unknown).apply(this, args);
      if (result instanceof Promise) {
        const now = (inFlight.get(this) ?? 0) + 1;
        inFlight.set(this, now);
        mostAtOnce = Math.max(mostAtOnce, now);
        void result.finally(() => inFlight.set(this, (inFlight.get(this) ?? 1) - 1)).catch(() => {});
      }
      return result;
    } as typeof query;
    const other = await createPgInvalidationBus(db.url);
    try {
      const keys = Array.from({ length: 20 }, (_, i) => `g-burst-${i}`);
      const allHeard = Promise.all(keys.map((key) => heard(other, 'grant', key)));
      await Promise.all(keys.map((key) => bus.publish('grant', key)));
      await allHeard;
      expect(mostAtOnce).toBe(1);
    } finally {
      pg.Client.prototype.query = query;
      await other.close();
    }
  });

  it('publishes an announcement no trigger makes to this instance at once and to the others', async () => {
    const other = await createPgInvalidationBus(db.url);
    try {
      let here = false;
      const stop = bus.subscribe({
        invalidate: (t, k) => {
          here ||= t === 'grant' && k === 'g-9';
        },
        reset: () => {},
      });
      const there = heard(other, 'grant', 'g-9');
      await bus.publish('grant', 'g-9');
      expect(here).toBe(true);
      await there;
      stop();
    } finally {
      await other.close();
    }
  });

  it('empties the caches when the subscription is lost, reads through meanwhile, and resumes once it is back', async () => {
    const cache = createInvalidatingCache<string>({ bus, topic: 'client', maxEntries: 10, maxAgeMs: 60_000 });
    const reads: string[] = [];
    const read = () =>
      cache.get('k', async () => {
        reads.push('k');
        return 'v';
      });
    await read();
    expect(cache.size).toBe(1);
    const down = new Promise<void>((resolve) => {
      stateChanged = () => {
        if (states.at(-1) === false) resolve();
      };
    });
    // What a Postgres restart or a dropped connection does to the listening session.
    const { rows } = await sql.query<{ n: number }>(
      'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1',
      [INVALIDATION_APPLICATION_NAME],
    );
    expect(rows[0]?.n).toBe(1);
    await down;
    expect(bus.live).toBe(false);
    expect(cache.size).toBe(0);
    await read();
    expect(cache.size).toBe(0);
    const up = new Promise<void>((resolve) => {
      stateChanged = () => {
        if (states.at(-1) === true) resolve();
      };
    });
    await up;
    expect(bus.live).toBe(true);
    await read();
    await read();
    expect(reads).toEqual(['k', 'k', 'k']);
    cache.close();
  });
});

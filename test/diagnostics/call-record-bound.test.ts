import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Redis } from 'ioredis';
import Koa from 'koa';
import { createCallDiagnostics, type CallDiagnostics } from '../../src/diagnostics/call-diagnostics.ts';
import type { CallJournal } from '../../src/diagnostics/call-journal.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { loadTrustAnchors } from '../../src/pki/certificate-chain.ts';
import { createSqlCertificateRegistry } from '../../src/storage/sql/certificate-registry.ts';
import { createPgliteSqlClient, type SqlClient } from '../../src/storage/sql/sql-client.ts';
import { connectRedis } from '../../src/storage/redis/redis-client.ts';
import { createRedisCallJournal } from '../../src/storage/redis/call-journal.ts';
import { copyMigratedEmbeddedDatabase } from '../support/databases.ts';
import { freePort } from '../support/moat-harness.ts';
import { createTestCa } from '../support/pki.ts';
import { REDIS_SERVER, startRedisServer, stopRedisServer } from '../support/private-redis.ts';

/** A full garbage collection, here where jest runs without --expose-gc (V8 installs `gc` in a new context once the flag is set). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/*
 * A call record is kept before its response is sent, but a response waits for it at most half a
 * second; past that it is finished after the response. While storage is slow those records pile up,
 * so at most a bounded number may be in flight: past it a call goes unrecorded (logged once) rather
 * than queueing work and connections behind an outage. The journal here is the Redis one, on a
 * redis-server of the test's own that is paused (SIGSTOP) while the records are made.
 */
(REDIS_SERVER === undefined ? describe.skip : describe)('call records while the journal is silent', () => {
  let dir: string;
  let redisServer: ChildProcess;
  let redis: Redis;
  let sql: SqlClient;
  let journal: CallJournal;
  let diagnostics: CallDiagnostics;
  let deps: Parameters<typeof createCallDiagnostics>[0];
  const logged: { event?: string }[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-call-records-'));
    const port = await freePort();
    redisServer = await startRedisServer(port);
    redis = await connectRedis(`redis://127.0.0.1:${port}`);
    journal = createRedisCallJournal(redis, 'records:', { retentionSeconds: 60, perOwner: 10 });
    await copyMigratedEmbeddedDatabase(join(dir, 'pglite'));
    sql = await createPgliteSqlClient(join(dir, 'pglite'));
    const ca = await createTestCa([{ CN: ['Call Record CA'] }]);
    writeFileSync(join(dir, 'ca.pem'), ca.certPem);
    const lines = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) logged.push(JSON.parse(line) as { event?: string });
        done();
      },
    });
    deps = {
      journal,
      // Calls without a client certificate: the record needs no registry lookup, only the journal.
      clientCertificate: () => undefined,
      refusal: () => undefined,
      registry: createSqlCertificateRegistry(sql),
      anchors: loadTrustAnchors([join(dir, 'ca.pem')]),
      logger: createLogger('warn', lines as never),
      recordsInFlightMax: 2,
    };
    diagnostics = createCallDiagnostics(deps);
  });

  afterAll(async () => {
    redisServer?.kill('SIGCONT');
    redis?.disconnect();
    try {
      await sql?.close();
    } finally {
      if (redisServer !== undefined) await stopRedisServer(redisServer);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A token request's koa context, as the request-context middleware leaves it. */
  const tokenCall = (interactionId: string) => {
    const req = new IncomingMessage(new Socket());
    const ctx = new Koa().createContext(req, new ServerResponse(req));
    ctx.method = 'POST';
    ctx.path = '/token';
    ctx.status = 200;
    ctx.state.requestContext = { requestId: randomUUID(), interactionId };
    ctx.state.clientId = 'client-bound';
    return ctx;
  };

  const timed = async (recording: Promise<void>) => {
    const started = Date.now();
    await recording;
    return Date.now() - started;
  };

  it('waits for a slow record at most half a second, and past the bound records nothing', async () => {
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    redisServer.kill('SIGSTOP');
    const calls = ids.map((id) => {
      const ctx = tokenCall(id);
      return { context: new WeakRef(ctx), recorded: timed(diagnostics.recordCall(ctx, 'ok')) };
    });
    const [first, second, third] = await Promise.all(calls.map((call) => call.recorded));
    // The first two wait out the half second; the third finds two in flight and is not recorded.
    expect(first).toBeGreaterThanOrEqual(450);
    expect(first).toBeLessThan(2000);
    expect(second).toBeGreaterThanOrEqual(450);
    expect(third).toBeLessThan(100);
    expect(logged.filter((line) => line.event === 'diagnostics.records_dropped')).toHaveLength(1);
    // The two records still wait for Redis, and hold nothing of their requests' contexts (request,
    // response, socket, body): those are collected.
    collectGarbage();
    expect(calls.map((call) => call.context.deref() === undefined)).toEqual([true, true, true]);

    // Redis answers again: the two records finish after their "responses", and the bound is free.
    redisServer.kill('SIGCONT');
    const deadline = Date.now() + 5000;
    while ((await journal.byInteractionId(ids[1]!)).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await journal.byInteractionId(ids[0]!)).toHaveLength(1);
    expect(await journal.byInteractionId(ids[1]!)).toHaveLength(1);
    expect(await journal.byInteractionId(ids[2]!)).toEqual([]);
    const later = randomUUID();
    expect(await timed(diagnostics.recordCall(tokenCall(later), 'ok'))).toBeLessThan(450);
    expect(await journal.byInteractionId(later)).toHaveLength(1);
  });

  it('logs a record it cannot make, and never fails the finished call with it', async () => {
    const failing = createCallDiagnostics({
      ...deps,
      clientCertificate: () => {
        throw new Error('the connection is gone');
      },
    });
    const before = logged.filter((line) => line.event === 'diagnostics.record_failed').length;
    await expect(failing.recordCall(tokenCall(randomUUID()), 'ok')).resolves.toBeUndefined();
    expect(logged.filter((line) => line.event === 'diagnostics.record_failed')).toHaveLength(before + 1);
  });
});

if (REDIS_SERVER === undefined) {
  it.skip('call record bound test: no redis-server binary on this machine', () => {});
}

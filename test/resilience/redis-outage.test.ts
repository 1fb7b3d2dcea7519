import type { ChildProcess } from 'node:child_process';
import { sampleSum, scrapeMetrics } from '../support/admin-metrics.ts';
import { freePort, startMoat, type Harness } from '../support/moat-harness.ts';
import { REDIS_SERVER, startRedisServer, stopRedisServer } from '../support/private-redis.ts';
import { onboardTpp, pushAuthorization, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Redis going away while TPPs call: requests fail fast with a 503 temporarily_unavailable (never a
 * hang or a 500), and succeed again once Redis is back, without restarting Moat; the operator sees
 * the outage on the admin listener's /metrics. The test runs its own redis-server on a free port,
 * never the shared one.
 */

(REDIS_SERVER === undefined ? describe.skip : describe)('a Redis outage', () => {
  let port: number;
  let redis: ChildProcess;
  let h: Harness;
  let tpp: RegisteredTpp;

  beforeAll(async () => {
    port = await freePort();
    redis = await startRedisServer(port);
    h = await startMoat({ config: { storage: { redisUrl: `redis://127.0.0.1:${port}`, redisKeyPrefix: 'outage:' } } });
    tpp = await onboardTpp(h);
  });

  afterAll(async () => {
    await tpp?.close();
    await h?.close();
    if (redis !== undefined) await stopRedisServer(redis);
  });

  let before: string;
  it('answers PAR with 503 temporarily_unavailable and Retry-After while Redis is down, within seconds', async () => {
    await pushAuthorization(tpp);
    before = await scrapeMetrics(h);
    await stopRedisServer(redis);
    const started = Date.now();
    const res = await tpp.fetch(`${h.issuer}/par`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: tpp.client.client_id,
        response_type: 'code',
        redirect_uri: tpp.redirectUri,
        scope: 'openid',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      }).toString(),
    });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'a storage backend is unavailable; retry shortly' });
  });

  it('shows the outage on the admin listener\'s /metrics: moat_storage_errors_total{backend="redis"} rises and moat_ready is 0', async () => {
    expect(sampleSum(before, 'moat_ready')).toBe(1);
    const during = await scrapeMetrics(h);
    expect(sampleSum(during, 'moat_storage_errors_total', { backend: 'redis' })).toBeGreaterThan(
      sampleSum(before, 'moat_storage_errors_total', { backend: 'redis' }),
    );
    // The refused PAR was stored through the Redis model store, where its failure is counted.
    expect(sampleSum(during, 'moat_storage_errors_total', { backend: 'redis', operation: 'upsert' })).toBeGreaterThan(0);
    expect(sampleSum(during, 'moat_storage_errors_total', { backend: 'postgres' })).toBe(0);
    expect(sampleSum(during, 'moat_ready')).toBe(0);
  });

  it('serves again within 5 s of Redis coming back, without a restart', async () => {
    redis = await startRedisServer(port);
    const deadline = Date.now() + 5000;
    let ok = false;
    while (!ok && Date.now() < deadline) {
      ok = await pushAuthorization(tpp).then(
        () => true,
        () => false,
      );
      if (!ok) await new Promise((r) => setTimeout(r, 200));
    }
    expect(ok).toBe(true);
    expect(sampleSum(await scrapeMetrics(h), 'moat_ready')).toBe(1);
  });
});

if (REDIS_SERVER === undefined) {
  it.skip('Redis outage test: no redis-server binary on this machine', () => {});
}

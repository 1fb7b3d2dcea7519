import * as oauth from 'oauth4webapi';
import { sampleSum, scrapeMetrics } from '../support/admin-metrics.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { postgresBinaries, startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { authorize, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import { clientCredentialsToken, consentApi, accountAccessBody, redeem, refresh } from '../support/consents.ts';

/*
 * Postgres crashing while TPPs call: requests that need it fail fast with a 503 (never a hang or a
 * 500), succeed again within seconds of Postgres returning — without restarting Moat — and no write
 * Moat acknowledged before the crash is lost; the operator sees the outage on the admin listener's
 * /metrics. The test runs its own Postgres, never the shared one.
 */

const bin = postgresBinaries();
if (bin === undefined && process.env.TEST_MOAT_REQUIRE_SERVICES === '1') throw new Error('the Postgres server binaries (initdb, pg_ctl) are required in CI');
if (bin === undefined) process.stderr.write('moat tests: no Postgres server binaries; the Postgres outage test is skipped\n');

(bin === undefined ? describe.skip : describe)('Postgres failing under Moat', () => {
  let pg: PrivatePostgres;
  let h: Harness;
  let tpp: RegisteredTpp;

  beforeAll(async () => {
    pg = await startPrivatePostgres(bin!);
    h = await startMoat({ backend: 'embedded', config: { storage: { postgresUrl: pg.url } } });
    tpp = await onboardTpp(h);
  });
  afterAll(async () => {
    await pg?.resume().catch(() => undefined);
    await tpp?.close();
    await h?.close();
    await pg?.destroy();
  });

  it('fails fast with 503 while Postgres is down, recovers without a restart, and loses no acknowledged write', async () => {
    const { body: tokens } = await redeem(tpp, await authorize(h, tpp));
    const ccToken = await clientCredentialsToken(tpp, 'accounts');
    const lodged = await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token: ccToken, body: accountAccessBody() });
    expect(lodged.status).toBe(201);
    // Acknowledged just before the crash: it must survive it.
    const withdrawn = await consentApi(tpp, 'DELETE', `/aisp/account-access-consents/${lodged.body.Data.ConsentId}`, { token: ccToken });
    expect(withdrawn.status).toBe(204);

    await pg.stop('immediate');
    const started = Date.now();
    const during = await refresh(tpp, tokens.refresh_token as string);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(during.status).toBe(503);
    expect(during.body.error).toBe('temporarily_unavailable');
    const api = await consentApi(tpp, 'GET', `/aisp/account-access-consents/${lodged.body.Data.ConsentId}`, { token: ccToken });
    expect(api.status).toBe(503);

    await pg.start();
    const back = Date.now();
    let after = await refresh(tpp, tokens.refresh_token as string);
    while (after.status !== 200 && Date.now() - back < 5000) {
      await new Promise((r) => setTimeout(r, 200));
      after = await refresh(tpp, tokens.refresh_token as string);
    }
    expect(after.status).toBe(200);
    expect(Date.now() - back).toBeLessThan(5000);
    const read = await consentApi(tpp, 'GET', `/aisp/account-access-consents/${lodged.body.Data.ConsentId}`, { token: ccToken });
    expect(read.body.Data.Status).toBe('Rejected');
    expect((await h.moat.consents.getForClient(tokens.consent_id as string, tpp.client.client_id)).status).toBe('Authorised');
    const cc = await oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts' }), {
      [oauth.customFetch]: tpp.fetch,
    });
    expect(cc.status).toBe(200);
  });

  it('shows the outage on the admin listener\'s /metrics: moat_storage_errors_total{backend="postgres"} rises, moat_ready drops to 0 and comes back', async () => {
    const before = await scrapeMetrics(h);
    expect(sampleSum(before, 'moat_ready')).toBe(1);
    const ccToken = await clientCredentialsToken(tpp, 'accounts');

    await pg.stop('immediate');
    expect((await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token: ccToken, body: accountAccessBody() })).status).toBe(503);
    // The scrape itself still answers while Postgres is down.
    const during = await scrapeMetrics(h);
    expect(sampleSum(during, 'moat_storage_errors_total', { backend: 'postgres' })).toBeGreaterThan(
      sampleSum(before, 'moat_storage_errors_total', { backend: 'postgres' }),
    );
    expect(sampleSum(during, 'moat_storage_errors_total', { backend: 'postgres', operation: 'query' })).toBeGreaterThan(0);
    expect(sampleSum(during, 'moat_storage_errors_total', { backend: 'redis' })).toBe(0);
    expect(sampleSum(during, 'moat_ready')).toBe(0);

    await pg.start();
    const back = Date.now();
    let ready = 0;
    while (ready !== 1 && Date.now() - back < 5000) {
      ready = sampleSum(await scrapeMetrics(h), 'moat_ready');
      if (ready !== 1) await new Promise((r) => setTimeout(r, 200));
    }
    expect(ready).toBe(1);
  });

  /*
   * Postgres that stops answering without closing its connections (a stalled host, a paused VM, a
   * saturated disk): no error comes back, only pg's query_timeout (10 s) ends the wait. A request that
   * needs Postgres then gets the same 503 as in a crash, never a 500, within that timeout and the
   * half second the call record may add (the sandbox keeps one per call), and serves again once Postgres
   * answers.
   */
  describe('silent', () => {
    const timed = async <T extends { status: number }>(call: () => Promise<T>): Promise<T & { ms: number }> => {
      const started = Date.now();
      const answer = await call();
      return Object.assign(answer, { ms: Date.now() - started });
    };

    it('answers 503 temporarily_unavailable, not 500, to what needs Postgres, and serves again once it answers', async () => {
      const { body: tokens } = await redeem(tpp, await authorize(h, tpp));
      const ccToken = await clientCredentialsToken(tpp, 'accounts');
      const lodged = await consentApi(tpp, 'POST', '/aisp/account-access-consents', { token: ccToken, body: accountAccessBody() });
      expect(lodged.status).toBe(201);

      await pg.pause();
      const [refreshed, read] = await Promise.all([
        timed(() => refresh(tpp, tokens.refresh_token as string)),
        timed(() => consentApi(tpp, 'GET', `/aisp/account-access-consents/${lodged.body.Data.ConsentId}`, { token: ccToken })),
      ]);
      expect(refreshed.status).toBe(503);
      expect(refreshed.body.error).toBe('temporarily_unavailable');
      expect(read.status).toBe(503);
      // query_timeout (10 s) and at most half a second's wait for the call record, with room for a loaded machine.
      expect(Math.max(refreshed.ms, read.ms)).toBeLessThan(12_000);

      await pg.resume();
      const back = await refresh(tpp, tokens.refresh_token as string);
      expect(back.status).toBe(200);
    }, 60_000);
  });
});

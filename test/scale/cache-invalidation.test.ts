import { randomUUID } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import type { InvalidationTopic } from '../../src/caching/invalidation.ts';
import { describeWithServices } from '../support/databases.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import { introspect, refresh } from '../support/consents.ts';
import { heard } from '../support/invalidation.ts';
import { sampleSum, scrapeMetrics } from '../support/admin-metrics.ts';

/*
 * Two instances on one Postgres and Redis each keep clients, certificate statuses, consents, customers
 * and, for introspection, grants in memory (src/caching/). A certificate revoked, a client deleted or a consent revoked through one
 * instance is refused by that instance at once, and by the other as soon as Postgres's announcement
 * reaches it (RFC 8705 §2.1: a revoked certificate authenticates nobody). The test waits for the
 * announcement itself, never for a time.
 */

/** Resolves when instance `h` has heard that `topic:key` changed. Subscribe before making the change. */
const heardOn = (h: Harness, topic: InvalidationTopic, key: string) => heard(h.moat.storage.invalidation, topic, key);

/** Repeats `read` on `h` (five times at most) until one answer came from its `cache` in memory. */
async function readUntilCachedOn(h: Harness, cache: string, read: () => Promise<void>): Promise<void> {
  const hits = async () => sampleSum(await scrapeMetrics(h), 'moat_cache_reads_total', { cache, result: 'hit' });
  const before = await hits();
  for (let attempt = 0; attempt < 5 && (await hits()) === before; attempt += 1) await read();
  expect(await hits()).toBeGreaterThan(before);
}

describeWithServices('caches on two instances', () => {
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    a = await startMoat({ backend: 'services' });
    b = await startMoat({
      backend: 'services',
      config: { issuer: a.issuer, dataDir: a.config.dataDir, keys: { dir: a.config.keys.dir }, storage: a.config.storage },
    });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  /** The TPP talking to instance `h` (one issuer, the instance's own port). */
  const via = (h: Harness, tpp: RegisteredTpp): RegisteredTpp => {
    const origin = `https://localhost:${h.port}`;
    return { ...tpp, as: { ...tpp.as, token_endpoint: `${origin}/token`, introspection_endpoint: `${origin}/introspect` } };
  };
  const clientCredentials = async (tpp: RegisteredTpp) => {
    const res = await oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts' }), {
      [oauth.customFetch]: tpp.fetch,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('a certificate revoked on one instance authenticates nobody there at once, nor on the other once announced', async () => {
    const tpp = await onboardTpp(a);
    try {
      const thumbprint = tpp.creds.summary['x5t#S256'] as string;
      // Both instances have the certificate's status (and the client) in memory.
      expect(await clientCredentials(via(a, tpp))).toEqual({ status: 200, body: expect.objectContaining({ token_type: 'Bearer' }) });
      const onB = await clientCredentials(via(b, tpp));
      expect(onB.status).toBe(200);
      expect((await introspect(via(b, tpp), onB.body.access_token as string)).active).toBe(true);

      const announced = heardOn(b, 'certificate', thumbprint);
      await a.moat.certificates.registry.revoke(thumbprint, { source: 'operator', reason: 'key compromise' });
      const refusedOnA = await clientCredentials(via(a, tpp));
      expect(refusedOnA).toEqual({
        status: 401,
        body: expect.objectContaining({ error: 'invalid_client', error_description: expect.stringContaining('the client certificate has been revoked') }),
      });

      await announced;
      expect(await clientCredentials(via(b, tpp))).toEqual({ status: 401, body: expect.objectContaining({ error: 'invalid_client' }) });
    } finally {
      await tpp.close();
    }
  });

  it('a token bound to a certificate revoked on one instance introspects inactive on the other', async () => {
    const tpp = await onboardTpp(a);
    const rs = await onboardTpp(a);
    try {
      const thumbprint = tpp.creds.summary['x5t#S256'] as string;
      const token = (await clientCredentials(via(b, tpp))).body.access_token as string;
      expect((await introspect(via(b, tpp), token)).active).toBe(true);
      const announced = heardOn(b, 'certificate', thumbprint);
      await a.moat.certificates.registry.revoke(thumbprint, { source: 'operator', reason: 'key compromise' });
      await announced;
      // The TPP itself can no longer authenticate; its token is dead for everyone who asks.
      expect((await introspect(via(b, rs), token)).active).toBe(false);
    } finally {
      await rs.close();
      await tpp.close();
    }
  });

  it('a client deleted on one instance is refused there at once, and on the other once announced', async () => {
    const tpp = await onboardTpp(a);
    try {
      expect((await clientCredentials(via(a, tpp))).status).toBe(200);
      expect((await clientCredentials(via(b, tpp))).status).toBe(200);
      const announced = heardOn(b, 'client', tpp.client.client_id);
      // RFC 7592 §2.3: the TPP deletes its registration (on A).
      const registration = tpp.client as unknown as { registration_client_uri: string; registration_access_token: string };
      const deleted = await tpp.fetch(registration.registration_client_uri, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${registration.registration_access_token}` },
      });
      expect(deleted.status).toBe(204);
      expect(await clientCredentials(via(a, tpp))).toEqual({ status: 401, body: expect.objectContaining({ error: 'invalid_client' }) });
      await announced;
      expect(await clientCredentials(via(b, tpp))).toEqual({ status: 401, body: expect.objectContaining({ error: 'invalid_client' }) });
    } finally {
      await tpp.close();
    }
  });

  it('a consent revoked on one instance is seen revoked by the other once announced, and its refresh token fails there', async () => {
    const tpp = await onboardTpp(a);
    try {
      const { tokens } = await authorizationCodeFlow(a, tpp);
      const consentId = tokens.consent_id as string;
      const { grantId } = await a.moat.consents.getForClient(consentId, tpp.client.client_id);
      // B reads the consent behind the grant (and keeps it).
      expect((await b.moat.consents.findByGrantId(grantId!))?.status).toBe('Authorised');
      expect((await b.moat.consents.findByGrantId(grantId!))?.status).toBe('Authorised');

      const announced = heardOn(b, 'consent-grant', grantId!);
      await a.moat.consents.revoke(consentId, { actor: 'customer', actorId: 'cust-alice' });
      expect((await a.moat.consents.findByGrantId(grantId!))?.status).toBe('Revoked');
      await announced;
      expect((await b.moat.consents.findByGrantId(grantId!))?.status).toBe('Revoked');
      const refreshed = await refresh(via(b, tpp), tokens.refresh_token!);
      expect(refreshed).toEqual({ status: 400, body: expect.objectContaining({ error: 'invalid_grant' }) });
    } finally {
      await tpp.close();
    }
  });

  it('a client quarantined on one instance is refused there at once, and on the other once announced; released, it works on both again', async () => {
    const tpp = await onboardTpp(a);
    try {
      expect((await clientCredentials(via(b, tpp))).status).toBe(200);
      const quarantined = heardOn(b, 'client', tpp.client.client_id);
      await a.moat.threats.restrictions.quarantine(tpp.client.client_id, 'test: suspected compromise', { actor: 'operator', actorId: 'test' });
      expect(await clientCredentials(via(a, tpp))).toEqual({ status: 401, body: expect.objectContaining({ error: 'invalid_client' }) });
      await quarantined;
      // B re-reads the restrictions in force on hearing it (not at its next periodic refresh).
      await b.moat.threats.restrictions.refreshed();
      expect(await clientCredentials(via(b, tpp))).toEqual({ status: 401, body: expect.objectContaining({ error: 'invalid_client' }) });

      const released = heardOn(b, 'client', tpp.client.client_id);
      await a.moat.threats.restrictions.release(tpp.client.client_id, 'quarantine', 'test');
      await released;
      await b.moat.threats.restrictions.refreshed();
      expect((await clientCredentials(via(b, tpp))).status).toBe(200);
    } finally {
      await tpp.close();
    }
  });
  /** Introspects `token` on `h` until one answer came from `h`'s grant cache (two reads within its 1 s bound). */
  const introspectUntilGrantCached = (h: Harness, tpp: RegisteredTpp, token: string) =>
    readUntilCachedOn(h, 'grant', async () => {
      expect((await introspect(via(h, tpp), token)).active).toBe(true);
    });

  /** An access token of a new grant, its grant kept by introspection on both instances. */
  const tokenIntrospectedOnBoth = async (tpp: RegisteredTpp) => {
    const { tokens } = await authorizationCodeFlow(a, tpp);
    const { grantId } = await a.moat.consents.getForClient(tokens.consent_id as string, tpp.client.client_id);
    await introspectUntilGrantCached(a, tpp, tokens.access_token);
    await introspectUntilGrantCached(b, tpp, tokens.access_token);
    return { accessToken: tokens.access_token, grantId: grantId! };
  };

  it('a grant changed on one instance is seen by introspection there at once, and on the other once announced', async () => {
    const tpp = await onboardTpp(a);
    try {
      const { accessToken, grantId } = await tokenIntrospectedOnBoth(tpp);

      // A change no real flow makes, to a field introspection checks (a token whose grant names
      // another customer is not active); saved through A's provider, as a flow saves a grant.
      const announced = heardOn(b, 'grant', grantId);
      const grant = await a.moat.provider.Grant.find(grantId);
      grant!.accountId = 'cust-bob';
      await grant!.save();
      expect((await introspect(via(a, tpp), accessToken)).active).toBe(false);
      await announced;
      expect((await introspect(via(b, tpp), accessToken)).active).toBe(false);
    } finally {
      await tpp.close();
    }
  });

  it('a grant deleted in the database (the CLI, an operator) is announced by Postgres to introspection on every instance', async () => {
    const tpp = await onboardTpp(a);
    try {
      const { accessToken, grantId } = await tokenIntrospectedOnBoth(tpp);

      const announced = [heardOn(a, 'grant', grantId), heardOn(b, 'grant', grantId)];
      // Straight to the store under Moat's wrappers: only the database's trigger announces it.
      await a.moat.storage.durable.destroy('Grant', grantId);
      await Promise.all(announced);
      expect((await introspect(via(a, tpp), accessToken)).active).toBe(false);
      expect((await introspect(via(b, tpp), accessToken)).active).toBe(false);
    } finally {
      await tpp.close();
    }
  });
  /** Looks `id` up on `h` as every token issued does (findAccount), until one answer came from `h`'s memory. */
  const customerCachedOn = (h: Harness, id: string, expected: unknown) =>
    readUntilCachedOn(h, 'customer', async () => {
      expect(await h.moat.customers.findById(id)).toEqual(expected);
    });
  /** Runs `sql` on the shared Postgres and waits until both instances heard `customer:<id>`. */
  const customerChangedBySql = async (id: string, sql: string, params: unknown[]) => {
    const announced = [heardOn(a, 'customer', id), heardOn(b, 'customer', id)];
    await a.moat.storage.sql.query(sql, params);
    await Promise.all(announced);
  };

  it('a customer changed or removed by an operator’s SQL is announced by Postgres to every instance, which then finds the change', async () => {
    const id = `cust-${randomUUID()}`;
    await customerChangedBySql(id, 'INSERT INTO customer (id, username, password_hash, name) VALUES ($1, $2, $3, $4)', [id, id, 'not-a-hash', 'Dora Example']);
    for (const h of [a, b]) await customerCachedOn(h, id, { id, name: 'Dora Example' });

    await customerChangedBySql(id, 'UPDATE customer SET name = $2 WHERE id = $1', [id, 'Dora Renamed']);
    for (const h of [a, b]) expect(await h.moat.customers.findById(id)).toEqual({ id, name: 'Dora Renamed' });

    for (const h of [a, b]) await customerCachedOn(h, id, { id, name: 'Dora Renamed' });
    await customerChangedBySql(id, 'DELETE FROM customer WHERE id = $1', [id]);
    for (const h of [a, b]) expect(await h.moat.customers.findById(id)).toBeUndefined();
  });

  it('a bank IdP’s customer (federated_customer) is announced by its table’s triggers too, but not a sign-in that only moves last_seen_at', async () => {
    // These instances sign customers in locally; what matters here is that every change is heard.
    const id = `idp-${randomUUID()}`;
    await customerChangedBySql(id, 'INSERT INTO federated_customer (id, issuer, name) VALUES ($1, $2, $3)', [id, 'https://idp.bank.example', 'Erin Example']);

    // A sign-in's `record` moves last_seen_at alone: nothing an instance keeps changed, so nothing is
    // announced. Postgres delivers notifications in commit order, so once the rename that follows is
    // heard, an announcement of the sign-in would have been heard before it.
    let announcements = 0;
    const stop = b.moat.storage.invalidation.subscribe({
      invalidate: (topic, key) => {
        if (topic === 'customer' && key === id) announcements += 1;
      },
      reset: () => {},
    });
    try {
      await a.moat.storage.sql.query('UPDATE federated_customer SET last_seen_at = now() WHERE id = $1', [id]);
      await customerChangedBySql(id, 'UPDATE federated_customer SET name = $2 WHERE id = $1', [id, 'Erin Renamed']);
    } finally {
      stop();
    }
    expect(announcements).toBe(1);

    await customerChangedBySql(id, 'UPDATE federated_customer SET issuer = $2 WHERE id = $1', [id, 'https://other-idp.bank.example']);
    await customerChangedBySql(id, 'DELETE FROM federated_customer WHERE id = $1', [id]);
  });

  it('introspection without a hint still finds a refresh token, and an access token', async () => {
    const tpp = await onboardTpp(a);
    try {
      const { tokens } = await authorizationCodeFlow(a, tpp);
      for (const h of [a, b]) {
        const refreshToken = await introspect(via(h, tpp), tokens.refresh_token!);
        expect(refreshToken).toMatchObject({ active: true, client_id: tpp.client.client_id });
        // Only an access token is sender-constrained (RFC 8705 §3.2): the refresh token's answer has no cnf.
        expect(refreshToken.cnf).toBeUndefined();
        expect(await introspect(via(h, tpp), tokens.access_token)).toMatchObject({ active: true, cnf: { 'x5t#S256': expect.any(String) } });
      }
    } finally {
      await tpp.close();
    }
  });
});

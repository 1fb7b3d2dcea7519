import * as oauth from 'oauth4webapi';
import type { InvalidationTopic } from '../../src/caching/invalidation.ts';
import { describeWithServices } from '../support/databases.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import { introspect, refresh } from '../support/consents.ts';
import { heard } from '../support/invalidation.ts';

/*
 * Two instances on one Postgres and Redis each keep clients, certificate statuses and consents in
 * memory (src/caching/). A certificate revoked, a client deleted or a consent revoked through one
 * instance is refused by that instance at once, and by the other as soon as Postgres's announcement
 * reaches it (RFC 8705 §2.1: a revoked certificate authenticates nobody). The test waits for the
 * announcement itself, never for a time.
 */

/** Resolves when instance `h` has heard that `topic:key` changed. Subscribe before making the change. */
const heardOn = (h: Harness, topic: InvalidationTopic, key: string) => heard(h.moat.storage.invalidation, topic, key);

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
});

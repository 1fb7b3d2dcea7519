import * as oauth from 'oauth4webapi';
import { describeWithServices } from '../support/databases.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { accountChoices, Browser, hiddenField, onboardTpp, pushAuthorization, type RegisteredTpp, signInWithoutFollowing } from '../support/tpp-client.ts';
import { introspect, redeem } from '../support/consents.ts';

/*
 * Two Moat instances on one Postgres and one Redis, as behind a load balancer: one issuer, shared
 * signing keys and cookie keys; a flow whose every step lands on the other instance still works.
 */

describeWithServices('two instances serving one flow', () => {
  let a: Harness;
  let b: Harness;
  let tpp: RegisteredTpp;
  beforeAll(async () => {
    a = await startMoat({ backend: 'services' });
    // Same issuer, storage, keys and sandbox material; its own port.
    b = await startMoat({
      backend: 'services',
      config: { issuer: a.issuer, dataDir: a.config.dataDir, keys: { dir: a.config.keys.dir }, storage: a.config.storage },
    });
    tpp = await onboardTpp(a);
  });
  afterAll(async () => {
    await tpp?.close();
    await b?.close();
    await a?.close();
  });

  const at = (h: Harness) => `https://localhost:${h.port}`;

  it('PAR on A, authorize and login on B, consent on A, token on B, introspection on A', async () => {
    const { requestUri, codeVerifier } = await pushAuthorization(tpp);
    const onA = new Browser(a, tpp.creds.serverCaPem);
    const onB = new Browser({ ...a, issuer: at(b) } as Harness, tpp.creds.serverCaPem);
    // One browser, two instances: the same cookies go to both.
    (onA as unknown as { cookies: Map<string, unknown> }).cookies = (onB as unknown as { cookies: Map<string, unknown> }).cookies;
    try {
      const start = await onB.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const uid = new URL(start.url, at(b)).pathname.split('/')[2]!;
      const login = await signInWithoutFollowing(onB, uid, hiddenField(await start.res.text(), 'csrf'));
      expect(login.status).toBe(303);
      // The resume and the consent page on A.
      const consentPage = await onA.follow(new URL(login.headers.get('location')!, at(a)).pathname);
      const consentUid = new URL(consentPage.url, at(a)).pathname.split('/')[2]!;
      const consentHtml = await consentPage.res.text();
      const form: [string, string][] = [
        ['decision', 'approve'],
        ['csrf', hiddenField(consentHtml, 'csrf')],
      ];
      // The customer shares what the page offers: a scope consent names its accounts.
      for (const id of accountChoices(consentHtml).values) form.push(['accounts', id]);
      const done = await onA.follow(`/interaction/${consentUid}/consent`, { method: 'POST', form });
      const callback = new URL(done.location!);
      const params = oauth.validateAuthResponse(tpp.as, tpp.client, callback, oauth.skipStateCheck);
      // The token from B (the code was issued by A).
      const asB = { ...tpp, as: { ...tpp.as, token_endpoint: `${at(b)}/token` } };
      const { status, body } = await redeem(asB, { params, codeVerifier });
      expect(status).toBe(200);
      // Issued by B, introspected by A: one issuer, one key set, one store.
      expect((await introspect(tpp, body.access_token as string)).active).toBe(true);
      expect(body.consent_id).toMatch(/^sc-/);
    } finally {
      await onA.close();
      await onB.close();
    }
  });
});

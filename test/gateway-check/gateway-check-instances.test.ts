import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as oauth from 'oauth4webapi';
import { describeWithServices } from '../support/databases.ts';
import { sandboxAccountsOf } from '../support/consents.ts';
import { heard } from '../support/invalidation.ts';
import { freePort, startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Issue 22: the gateway check's per-token cache on one instance drops a token revoked through
 * another — at /revoke (an access token destroyed in Redis, which no Postgres trigger sees) or by
 * revoking its consent — as soon as the announcement arrives. The test waits for the announcement
 * itself, never for a time, then asks the check once.
 */

const ACCOUNTS = 'https://api.bank.example/accounts';

describeWithServices('the gateway check on two instances', () => {
  let a: Harness;
  let b: Harness;
  let dir: string;
  let secret: string;
  let tpp: RegisteredTpp;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-gateway-instances-'));
    secret = randomBytes(32).toString('hex');
    writeFileSync(join(dir, 'secret'), secret);
    const shared = {
      resourceServers: [{ identifier: ACCOUNTS, scopes: ['accounts'] }],
      gatewayCheck: {
        enabled: true,
        port: 0,
        sharedSecretFile: join(dir, 'secret'),
        apiOrigin: 'https://api.bank.example',
        forwardedCertificate: 'nginx',
        routes: [{ prefix: '/accounts', resource: ACCOUNTS, scopes: ['accounts'] }],
      },
    };
    a = await startMoat({ backend: 'services', config: shared });
    b = await startMoat({
      backend: 'services',
      config: {
        ...shared,
        gatewayCheck: { ...shared.gatewayCheck, port: await freePort() },
        issuer: a.issuer,
        dataDir: a.config.dataDir,
        keys: { dir: a.config.keys.dir },
        storage: a.config.storage,
      },
    });
    tpp = await onboardTpp(a);
  });
  afterAll(async () => {
    await tpp?.close();
    await b?.close();
    await a?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** The check on instance B, as a gateway asks it. */
  const checkOnB = async (token: string) => {
    const res = await fetch(`http://127.0.0.1:${b.moat.gatewayCheckPort}/`, {
      headers: {
        'x-moat-gateway-secret': secret,
        authorization: `Bearer ${token}`,
        'x-ssl-client-cert': encodeURIComponent(tpp.creds.certPem),
        'x-original-uri': '/accounts',
        'x-original-method': 'GET',
      },
    });
    return {
      status: res.status,
      challenge: res.headers.get('www-authenticate'),
      consentId: res.headers.get('x-moat-consent-id'),
      accountIds: res.headers.get('x-moat-account-ids'),
    };
  };

  it("a token revoked at /revoke on one instance is refused by the other's warm cache once announced", async () => {
    const token = (await authorizationCodeFlow(a, tpp, { extraParams: { resource: ACCOUNTS } })).tokens.access_token;
    expect((await checkOnB(token)).status).toBe(200);
    expect(b.moat.tokenFacts.size).toBeGreaterThan(0);
    // oidc-provider's opaque access token is its own id.
    const announced = heard(b.moat.storage.invalidation, 'access-token', token);
    await oauth.processRevocationResponse(await oauth.revocationRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), token, { [oauth.customFetch]: tpp.fetch }));
    await announced;
    expect(await checkOnB(token)).toEqual(
      expect.objectContaining({ status: 401, challenge: 'Bearer error="invalid_token", error_description="the access token is not active"' }),
    );
  });

  it("a consent revoked on one instance is refused by the other's warm cache once announced", async () => {
    const token = (await authorizationCodeFlow(a, tpp, { extraParams: { resource: ACCOUNTS } })).tokens.access_token;
    const allowed = await checkOnB(token);
    expect(allowed.status).toBe(200);
    const grantId = (await b.moat.provider.AccessToken.find(token))!.grantId!;
    const announced = heard(b.moat.storage.invalidation, 'consent-grant', grantId);
    await a.moat.consents.revoke(allowed.consentId!, { actor: 'customer', actorId: 'cust-alice' });
    await announced;
    expect((await checkOnB(token)).status).toBe(401);
  });

  it("a Grant Management merge on one instance gives the earlier token the merged accounts in the other's warm cache once announced", async () => {
    const [current, savings] = sandboxAccountsOf('alice') as [string, string];
    const first = (await authorizationCodeFlow(a, tpp, { accounts: [current], extraParams: { resource: ACCOUNTS, grant_management_action: 'create' } })).tokens;
    expect(await checkOnB(first.access_token)).toMatchObject({ status: 200, accountIds: current });
    const grantId = (await b.moat.provider.AccessToken.find(first.access_token))!.grantId!;
    const announced = heard(b.moat.storage.invalidation, 'consent-grant', grantId);
    await authorizationCodeFlow(a, tpp, {
      accounts: [savings],
      extraParams: { resource: ACCOUNTS, grant_management_action: 'merge', grant_id: String(first.grant_id) },
    });
    await announced;
    const after = await checkOnB(first.access_token);
    expect(after.status).toBe(200);
    expect(after.accountIds?.split(',').sort()).toEqual([current, savings].sort());
  });
});

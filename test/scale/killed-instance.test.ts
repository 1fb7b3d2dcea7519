import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import * as oauth from 'oauth4webapi';
import { describeWithServices } from '../support/databases.ts';
import { freePort, startMoat, type Harness } from '../support/moat-harness.ts';
import { accountChoices, Browser, hiddenField, onboardTpp, type RegisteredTpp, signInWithoutFollowing } from '../support/tpp-client.ts';
import { redeem } from '../support/consents.ts';

/*
 * A Moat process killed (SIGKILL, no shutdown) in the middle of a customer's authorization: the
 * customer's next request reaches another instance, which finishes the flow — every piece of state
 * lives in Postgres and Redis, none in the dead process.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');

describeWithServices('an instance killed mid-flow', () => {
  let survivor: Harness;
  let victim: ChildProcess;
  let victimPort: number;
  let tpp: RegisteredTpp;

  beforeAll(async () => {
    survivor = await startMoat({ backend: 'services' });
    victimPort = await freePort();
    victim = spawn(process.execPath, ['src/main.ts'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        MOAT_ISSUER: survivor.issuer,
        MOAT_LISTEN__HOST: '127.0.0.1',
        MOAT_LISTEN__PORT: String(victimPort),
        MOAT_ADMIN__PORT: '0',
        MOAT_DATA_DIR: survivor.config.dataDir,
        MOAT_KEYS__DIR: survivor.config.keys.dir,
        MOAT_STORAGE__POSTGRES_URL: survivor.config.storage.postgresUrl!,
        MOAT_STORAGE__REDIS_URL: survivor.config.storage.redisUrl!,
        MOAT_STORAGE__REDIS_KEY_PREFIX: survivor.config.storage.redisKeyPrefix,
        MOAT_LOGGING__LEVEL: 'warn',
      },
    });
    let output = '';
    victim.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
    });
    victim.stderr!.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const deadline = Date.now() + 120_000;
    while (!output.includes('listening on port') && Date.now() < deadline && victim.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    if (!output.includes('listening on port')) throw new Error(`the second Moat did not start: ${output}`);
    tpp = await onboardTpp(survivor);
  }, 150_000);
  afterAll(async () => {
    if (victim?.exitCode === null) victim.kill('SIGKILL');
    await tpp?.close();
    await survivor?.close();
  });

  it("lets the surviving instance finish the customer's flow the killed one started", async () => {
    const victimOrigin = `https://localhost:${victimPort}`;
    const codeVerifier = oauth.generateRandomCodeVerifier();
    // The PAR and the customer's sign-in go to the instance that is about to die.
    const par = await tpp.fetch(`${victimOrigin}/par`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: tpp.client.client_id,
        response_type: 'code',
        redirect_uri: tpp.redirectUri,
        scope: 'openid accounts',
        code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
      }).toString(),
    });
    expect(par.status).toBe(201);
    const { request_uri: requestUri } = (await par.json()) as { request_uri: string };
    const onVictim = new Browser({ ...survivor, issuer: victimOrigin } as Harness, tpp.creds.serverCaPem);
    const onSurvivor = new Browser(survivor, tpp.creds.serverCaPem);
    (onSurvivor as unknown as { cookies: unknown }).cookies = (onVictim as unknown as { cookies: unknown }).cookies;
    try {
      const start = await onVictim.follow(`/authorize?${new URLSearchParams({ client_id: tpp.client.client_id, request_uri: requestUri })}`);
      const uid = new URL(start.url, victimOrigin).pathname.split('/')[2]!;
      const login = await signInWithoutFollowing(onVictim, uid, hiddenField(await start.res.text(), 'csrf'));
      expect(login.status).toBe(303);

      const exited = new Promise((r) => victim.once('exit', r));
      victim.kill('SIGKILL');
      await exited;

      // The customer's browser follows the redirect; the load balancer sends it to the survivor.
      const consentPage = await onSurvivor.follow(new URL(login.headers.get('location')!, survivor.issuer).pathname);
      expect(consentPage.res.status).toBe(200);
      const consentUid = new URL(consentPage.url, survivor.issuer).pathname.split('/')[2]!;
      const consentHtml = await consentPage.res.text();
      const form: [string, string][] = [
        ['decision', 'approve'],
        ['csrf', hiddenField(consentHtml, 'csrf')],
      ];
      // The customer shares what the page offers: a scope consent names its accounts.
      for (const id of accountChoices(consentHtml).values) form.push(['accounts', id]);
      const done = await onSurvivor.follow(`/interaction/${consentUid}/consent`, { method: 'POST', form });
      const params = oauth.validateAuthResponse(tpp.as, tpp.client, new URL(done.location!), oauth.skipStateCheck);
      const { status } = await redeem(tpp, { params, codeVerifier });
      expect(status).toBe(200);
    } finally {
      await onVictim.close();
      await onSurvivor.close();
    }
  });
});

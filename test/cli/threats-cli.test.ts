import { clientCredentialsToken } from '../support/consents.ts';
import { runMoat } from '../support/cli.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/* `moat threats …` acts through the running server's admin API: what it does, the server does. */

let h: Harness;
let tpp: RegisteredTpp;
beforeAll(async () => {
  h = await startMoat();
  tpp = await onboardTpp(h);
});
afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

// Run from elsewhere than the server: --data-dir says where its admin token is.
const moat = (...args: string[]) =>
  runMoat(['threats', ...args, '--admin-url', `http://127.0.0.1:${h.moat.adminPort}`, '--data-dir', h.dataDir], { env: { MOAT_ISSUER: h.issuer } });

it('quarantines and releases a client through the admin API, and lists restrictions and flags', async () => {
  const id = tpp.client.client_id;
  expect((await moat('quarantine', '--client', id)).code).toBe(2);

  const quarantined = await moat('quarantine', '--client', id, '--reason', 'fraud team: compromised TPP reported');
  expect(quarantined).toEqual(
    expect.objectContaining({
      code: 0,
      out: expect.stringMatching(new RegExp(`^quarantined: quarantine +${id} +since .* by admin-token, until released\\n +fraud team`)),
    }),
  );
  // The running server enforces it at once.
  await expect(clientCredentialsToken(tpp, 'accounts')).rejects.toThrow();

  const listed = await moat('restrictions', '--json');
  expect(JSON.parse(listed.out)).toEqual([expect.objectContaining({ clientId: id, kind: 'quarantine', reason: 'fraud team: compromised TPP reported' })]);
  expect((await moat('flags')).out).toBe('no flags\n');

  expect((await moat('release', '--client', id, '--reason', 'TPP rotated its keys')).code).toBe(0);
  expect(await clientCredentialsToken(tpp, 'accounts')).toEqual(expect.any(String));
  expect((await moat('restrictions')).out).toBe('no restrictions in force\n');
  // Releasing what is not in force is an error the operator can read.
  const again = await moat('release', '--client', id, '--reason', 'twice');
  expect(again).toEqual(expect.objectContaining({ code: 1, err: expect.stringMatching(/404 not_found: client .* has no quarantine in force/) }));
});

it('says plainly when the admin listener cannot be reached', async () => {
  const r = await runMoat(['threats', 'flags', '--admin-url', 'http://127.0.0.1:9'], { env: { MOAT_ISSUER: h.issuer } });
  expect(r.code).toBe(1);
  expect(r.err).toMatch(/the admin listener at http:\/\/127\.0\.0\.1:9 cannot be reached .*is Moat running/);
});

import * as oauth from 'oauth4webapi';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { onboardTpp, pushAuthorization, registerTpp, issueTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Rate limits on PAR, token, registration and CIBA's backchannel authentication: per client certificate and per address, answered
 * with 429, Retry-After and an error that says what to do.
 */

let h: Harness;
let a: RegisteredTpp;
let b: RegisteredTpp;
beforeAll(async () => {
  h = await startMoat({
    config: {
      rateLimits: {
        par: { perClient: { requests: 3, perSeconds: 60 }, perAddress: { requests: 100, perSeconds: 60 } },
        token: { perClient: { requests: 1000, perSeconds: 60 }, perAddress: { requests: 1000, perSeconds: 60 } },
        registration: { perClient: { requests: 1000, perSeconds: 60 }, perAddress: { requests: 4, perSeconds: 60 } },
        backchannel: { perClient: { requests: 2, perSeconds: 60 }, perAddress: { requests: 100, perSeconds: 60 } },
      },
    },
  });
  a = await onboardTpp(h);
  b = await onboardTpp(h);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await h?.close();
});

it('limits PARs per client certificate, leaving other TPPs alone', async () => {
  for (let i = 0; i < 3; i += 1) await pushAuthorization(a);
  const res = await oauth.pushedAuthorizationRequest(
    a.as,
    a.client,
    oauth.TlsClientAuth(),
    new URLSearchParams({
      response_type: 'code',
      redirect_uri: a.redirectUri,
      scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
    }),
    { [oauth.customFetch]: a.fetch },
  );
  expect(res.status).toBe(429);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(await res.json()).toEqual({
    error: 'temporarily_unavailable',
    error_description: expect.stringMatching(/^too many par requests from this client certificate; retry after \d+ s$/),
  });
  await expect(pushAuthorization(b)).resolves.toEqual(expect.objectContaining({ requestUri: expect.any(String) }));
  expect(h.logs.some((l) => l.event === 'rate_limited' && l.endpoint === 'par' && l.scope === 'client')).toBe(true);
});

it('limits registrations per address', async () => {
  // Two registrations were made in beforeAll; two more are allowed, the fifth is refused.
  for (let i = 0; i < 2; i += 1) expect((await registerTpp(h, await issueTpp(h))).status).toBe(201);
  const refused = await registerTpp(h, await issueTpp(h));
  expect(refused.status).toBe(429);
  expect(refused.body.error_description).toMatch(/too many registration requests from this address/);
});

it('limits backchannel authentication requests per client certificate: refused or not, each attempt counts', async () => {
  const attempt = () =>
    a.fetch(`${h.issuer}/backchannel`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: a.client.client_id, scope: 'openid', login_hint: 'cust-alice' }).toString(),
    });
  // a is not registered for CIBA: oidc-provider refuses the first two, the third is never reached.
  for (let i = 0; i < 2; i += 1) expect((await attempt()).status).toBe(400);
  const res = await attempt();
  expect(res.status).toBe(429);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(await res.json()).toEqual({
    error: 'temporarily_unavailable',
    error_description: expect.stringMatching(/^too many backchannel requests from this client certificate; retry after \d+ s$/),
  });
  const other = await b.fetch(`${h.issuer}/backchannel`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: b.client.client_id, scope: 'openid', login_hint: 'cust-alice' }).toString(),
  });
  expect(other.status).toBe(400);
});

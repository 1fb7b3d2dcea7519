import * as oauth from 'oauth4webapi';
import { authorizationCodeFlow, useMoatWithTpp, type RegisteredTpp } from '../support/tpp-client.ts';
import type { Harness } from '../support/moat-harness.ts';

/*
 * With refresh-token rotation on (tokens.refreshTokenRotation — off by default, as FAPI 2.0 SP
 * §5.3.2.1 advises), a refresh token is single-use: of 20 racing refreshes exactly one wins, and the
 * losers are a replay (invalid_grant), never a second token pair.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started), { config: { tokens: { refreshTokenRotation: true } } });

it('lets exactly one of 20 racing refreshes of one refresh token through', async () => {
  const { tokens } = await authorizationCodeFlow(h, tpp);
  const results = await Promise.all(
    Array.from({ length: 20 }, () =>
      oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.refresh_token!, { [oauth.customFetch]: tpp.fetch }),
    ),
  );
  const statuses = results.map((r) => r.status);
  expect(statuses.filter((s) => s === 200)).toHaveLength(1);
  expect(statuses.filter((s) => s === 400)).toHaveLength(19);
  const bodies = await Promise.all(results.map((r) => r.json() as Promise<Record<string, string>>));
  for (const [i, body] of bodies.entries()) {
    if (statuses[i] === 400) expect(body.error).toBe('invalid_grant');
  }
  // The old refresh token is spent whatever happened to the winner.
  const again = await oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.refresh_token!, { [oauth.customFetch]: tpp.fetch });
  expect(again.status).toBe(400);
  const winner = bodies[statuses.indexOf(200)]!;
  expect(winner.refresh_token).not.toBe(tokens.refresh_token);
});

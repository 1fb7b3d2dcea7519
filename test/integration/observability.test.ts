import { randomUUID } from 'node:crypto';
import type { Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, type RegisteredTpp, useMoatWithTpp } from '../support/tpp-client.ts';

/*
 * x-fapi-interaction-id (FAPI 2.0 SP / FAPI 1.0 Baseline §6.2.1) and what the logs may contain.
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

describe('x-fapi-interaction-id', () => {
  it('is echoed when the client sends one, and put on every log line of that request', async () => {
    const id = randomUUID();
    const res = await tpp.fetch(`${h.issuer}/.well-known/openid-configuration`, { headers: { 'x-fapi-interaction-id': id } });
    expect(res.headers.get('x-fapi-interaction-id')).toBe(id);
    const lines = h.logs.filter((l) => l.interactionId === id);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => typeof l.reqId === 'string')).toBe(true);
  });

  it('is generated as a UUID when the client sends none', async () => {
    const res = await tpp.fetch(`${h.issuer}/jwks`);
    expect(res.headers.get('x-fapi-interaction-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('is replaced, and the replacement logged, when the client sends something that is not a UUID', async () => {
    const res = await tpp.fetch(`${h.issuer}/jwks`, { headers: { 'x-fapi-interaction-id': 'not-a-uuid<script>' } });
    const id = res.headers.get('x-fapi-interaction-id')!;
    expect(id).not.toBe('not-a-uuid<script>');
    expect(h.logs).toContainEqual(expect.objectContaining({ interactionId: id, event: 'interaction_id.replaced' }));
  });

  it('is on the error responses too', async () => {
    const id = randomUUID();
    const res = await tpp.fetch(`${h.issuer}/token`, {
      method: 'POST',
      headers: { 'x-fapi-interaction-id': id, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=bogus',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_request', error_description: 'no client authentication mechanism provided' });
    expect(res.headers.get('x-fapi-interaction-id')).toBe(id);
  });
});

describe('the logs', () => {
  it('hold one request line per request with method, path, status and duration', async () => {
    const id = randomUUID();
    await tpp.fetch(`${h.issuer}/jwks`, { headers: { 'x-fapi-interaction-id': id } });
    expect(h.logs).toContainEqual(
      expect.objectContaining({
        event: 'request',
        interactionId: id,
        method: 'GET',
        path: '/jwks',
        status: 200,
        durationMs: expect.any(Number),
      }),
    );
  });

  it('never contain a token, a code, a password, a software statement or private key material', async () => {
    const { tokens, code, codeVerifier } = await authorizationCodeFlow(h, tpp);
    const text = JSON.stringify(h.logs);
    const secrets = [
      tokens.access_token,
      tokens.refresh_token!,
      tokens.id_token!,
      code,
      codeVerifier,
      'alice-sandbox',
      tpp.creds.ssa,
      tpp.creds.keyPem.split('\n')[1]!,
      tpp.creds.signingJwks.keys[0]!.d!,
    ];
    for (const secret of secrets) expect(text.includes(secret)).toBe(false);
    expect(h.logs.length).toBeGreaterThan(10);
  });
});

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import * as oauth from 'oauth4webapi';
import { listHsmKeys, type HsmKey } from '../../src/keys/hsm-signing-keys.ts';
import { openPkcs11Token } from '../../src/keys/pkcs11-token.ts';
import { scrapeMetrics, sampleSum } from '../support/admin-metrics.ts';
import { runMoat } from '../support/cli.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { softHsmAvailable, useSoftHsm, type SoftHsm } from '../support/softhsm.ts';
import { authorizationCodeFlow, authorize, customerConsents, onboardTpp, pushAuthorization, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * keys.source pkcs11 against a real PKCS#11 token (SoftHSM2): Moat signs ID tokens, JARM responses
 * and introspection responses in the token, publishes the public keys, rotates them with
 * overlapping publication through `moat keys`, answers 503 while the token is gone, and refuses to
 * start without it. On the test run's backend (Postgres + Redis, or the embedded default).
 */

const describeWithHsm = softHsmAvailable() ? describe : describe.skip;
type Pkcs11 = { library: string; tokenLabel: string; pin: string };

function hsmKeys(pkcs11: Pkcs11, algorithms: string[] = ['PS256', 'ES256']): Record<string, unknown> {
  return { keys: { source: 'pkcs11', algorithms, pkcs11 } };
}

async function publishedJwks(h: Harness, tpp: RegisteredTpp): Promise<JSONWebKeySet> {
  const res = await tpp.fetch(`${h.issuer}/jwks`);
  expect(res.status).toBe(200);
  return (await res.json()) as JSONWebKeySet;
}

async function keysInToken(pkcs11: Pkcs11): Promise<HsmKey[]> {
  const token = await openPkcs11Token({ ...pkcs11, maxSessions: 1 });
  try {
    return await listHsmKeys(token);
  } finally {
    token.close();
  }
}

describeWithHsm("signing keys in the bank's HSM (keys.source: pkcs11)", () => {
  let hsm: SoftHsm;
  beforeAll(() => {
    hsm = useSoftHsm();
  });

  describe('a Moat signing in the token', () => {
    let h: Harness;
    let pkcs11: Pkcs11;
    let keys: HsmKey[];
    beforeAll(async () => {
      pkcs11 = hsm.createToken('signing');
      h = await startMoat({ config: hsmKeys(pkcs11) });
      keys = await keysInToken(pkcs11);
    });
    afterAll(async () => {
      await h?.close();
    });

    it('generated an active PS256 and ES256 key in the token at first start and publishes only their public halves', async () => {
      expect(keys.map((k) => [k.alg, k.moat_state]).sort()).toEqual([
        ['ES256', 'active'],
        ['PS256', 'active'],
      ]);
      expect(h.logs).toEqual(expect.arrayContaining([expect.objectContaining({ event: 'keys.generated', source: 'pkcs11', kid: keys[0]!.kid })]));
      const tpp = await onboardTpp(h);
      try {
        const jwks = await publishedJwks(h, tpp);
        expect(jwks.keys.map((k) => k.kid).sort()).toEqual(keys.map((k) => k.kid).sort());
        expect(jwks.keys.some((k) => 'd' in k || 'p' in k)).toBe(false);
      } finally {
        await tpp.close();
      }
    });

    it('signs a PS256 ID token in the token that verifies with the published JWKS', async () => {
      const tpp = await onboardTpp(h);
      try {
        const { tokens } = await authorizationCodeFlow(h, tpp);
        const { payload, protectedHeader } = await jwtVerify(tokens.id_token!, createLocalJWKSet(await publishedJwks(h, tpp)), {
          issuer: h.issuer,
          audience: tpp.client.client_id,
          algorithms: ['PS256'],
        });
        expect(protectedHeader.kid).toBe(keys.find((k) => k.alg === 'PS256')!.kid);
        expect(payload.sub).toEqual(expect.any(String));
      } finally {
        await tpp.close();
      }
    });

    it('signs ES256 ID tokens, JARM responses (JARM §2.1), introspection responses (RFC 9701) and userinfo responses (OIDC Core §5.3.2) in the token for a client registered for ES256', async () => {
      const tpp = await onboardTpp(h, {
        registration: {
          id_token_signed_response_alg: 'ES256',
          authorization_signed_response_alg: 'ES256',
          introspection_signed_response_alg: 'ES256',
          userinfo_signed_response_alg: 'ES256',
        },
      });
      try {
        const jwks = createLocalJWKSet(await publishedJwks(h, tpp));
        const es256 = keys.find((k) => k.alg === 'ES256')!.kid;
        const { tokens } = await authorizationCodeFlow(h, tpp);
        const idToken = await jwtVerify(tokens.id_token!, jwks, { issuer: h.issuer, audience: tpp.client.client_id, algorithms: ['ES256'] });
        expect(idToken.protectedHeader.kid).toBe(es256);

        const { requestUri } = await pushAuthorization(tpp, { extraParams: { response_mode: 'jwt', state: 'hsm-state' } });
        const response = new URL(await customerConsents(h, tpp, requestUri)).searchParams.get('response')!;
        const jarm = await jwtVerify(response, jwks, { issuer: h.issuer, audience: tpp.client.client_id, algorithms: ['ES256'] });
        expect(jarm.payload).toEqual(expect.objectContaining({ code: expect.any(String), state: 'hsm-state' }));

        const introspection = await tpp.fetch(`${h.issuer}/introspect`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/token-introspection+jwt' },
          body: new URLSearchParams({ token: tokens.access_token, client_id: tpp.client.client_id }).toString(),
        });
        expect(introspection.status).toBe(200);
        const signed = await jwtVerify(await introspection.text(), jwks, { issuer: h.issuer, algorithms: ['ES256'], typ: 'token-introspection+jwt' });
        expect(signed.protectedHeader.kid).toBe(es256);
        expect(signed.payload.token_introspection).toEqual(expect.objectContaining({ active: true }));

        // OpenID Connect scopes alone get a token for userinfo, which answers a JWT signed in the token.
        const forUserinfo = await authorizationCodeFlow(h, tpp, { scope: 'openid' });
        const userinfo = await tpp.fetch(`${h.issuer}/userinfo`, { headers: { authorization: `Bearer ${forUserinfo.tokens.access_token}` } });
        expect(userinfo.status).toBe(200);
        expect(userinfo.headers.get('content-type')).toMatch(/^application\/jwt/);
        const claims = await jwtVerify(await userinfo.text(), jwks, { issuer: h.issuer, audience: tpp.client.client_id, algorithms: ['ES256'] });
        expect(claims.protectedHeader.kid).toBe(es256);
        expect(claims.payload.sub).toBe(idToken.payload.sub);
      } finally {
        await tpp.close();
      }
    });
  });

  it('rotates with overlapping publication through moat keys: generate publishes, activate signs with the new key, the retired key still verifies', async () => {
    const pkcs11 = hsm.createToken('rotation');
    const cwd = mkdtempSync(join(tmpdir(), 'moat-hsm-cli-'));
    writeFileSync(join(cwd, 'moat.yaml'), JSON.stringify(hsmKeys(pkcs11, ['PS256'])));
    const idTokenOf = async (h: Harness) => {
      const tpp = await onboardTpp(h);
      try {
        const { tokens } = await authorizationCodeFlow(h, tpp);
        return { idToken: tokens.id_token!, jwks: await publishedJwks(h, tpp), clientId: tpp.client.client_id, issuer: h.issuer };
      } finally {
        await tpp.close();
      }
    };

    let h = await startMoat({ config: hsmKeys(pkcs11, ['PS256']) });
    const first = await idTokenOf(h).finally(() => h.close());
    const oldKid = decodeProtectedHeader(first.idToken).kid!;

    const generated = await runMoat(['keys', 'generate', '--alg', 'PS256'], { cwd });
    expect(generated).toEqual(expect.objectContaining({ code: 0, out: expect.stringMatching(/^next: +\S+ \(PS256\), published/) }));
    const newKid = /next: +(\S+)/.exec(generated.out)![1]!;

    // Published first: every instance restarted with the next key verifies with it, none signs with it.
    h = await startMoat({ config: hsmKeys(pkcs11, ['PS256']) });
    const staged = await idTokenOf(h).finally(() => h.close());
    expect(decodeProtectedHeader(staged.idToken).kid).toBe(oldKid);
    expect(staged.jwks.keys.find((k) => k.kid === newKid)).toEqual(expect.objectContaining({ key_ops: ['verify'] }));
    expect(staged.jwks.keys.find((k) => k.kid === oldKid)).not.toHaveProperty('key_ops');

    const activated = await runMoat(['keys', 'activate', newKid], { cwd });
    expect(activated.code).toBe(0);
    expect(activated.out).toContain(`retired  ${oldKid} (PS256)`);
    const listed = await runMoat(['keys', 'list'], { cwd });
    expect(listed.out).toMatch(new RegExp(`${newKid}\\s+PS256\\s+active`));
    expect(listed.out).toMatch(new RegExp(`${oldKid}\\s+PS256\\s+retired`));

    h = await startMoat({ config: hsmKeys(pkcs11, ['PS256']) });
    const rotated = await idTokenOf(h).finally(() => h.close());
    expect(decodeProtectedHeader(rotated.idToken).kid).toBe(newKid);
    expect(rotated.jwks.keys.find((k) => k.kid === oldKid)).toEqual(expect.objectContaining({ key_ops: ['verify'] }));
    // An ID token signed before the rotation still verifies with the JWKS published after it.
    await expect(jwtVerify(first.idToken, createLocalJWKSet(rotated.jwks), { issuer: first.issuer, audience: first.clientId })).resolves.toEqual(
      expect.objectContaining({ protectedHeader: expect.objectContaining({ kid: oldKid }) }),
    );

    // The active key is replaced, never retired alone.
    const refused = await runMoat(['keys', 'retire', newKid], { cwd });
    expect(refused).toEqual(expect.objectContaining({ code: 1, err: expect.stringContaining(`${newKid} is the active PS256 key`) }));
  });

  describe('a token that goes away while Moat runs', () => {
    let h: Harness;
    let pkcs11: Pkcs11;
    beforeAll(async () => {
      pkcs11 = hsm.createToken('removed');
      h = await startMoat({ config: hsmKeys(pkcs11) });
    });
    afterAll(async () => {
      await h?.close();
    });

    it("answers a token request 503 temporarily_unavailable (RFC 6749 §5.2) with a classified log line and metric, shows a JARM client's customer the error page, and the same code works once the token is back", async () => {
      const tpp = await onboardTpp(h);
      const putBack = hsm.removeToken(pkcs11.tokenLabel);
      let restored = false;
      try {
        const { params, codeVerifier } = await authorize(h, tpp);
        const refused = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
          [oauth.customFetch]: tpp.fetch,
        });
        expect(refused.status).toBe(503);
        expect(await refused.json()).toEqual({ error: 'temporarily_unavailable', error_description: 'the signing service is unavailable; retry shortly' });
        expect(refused.headers.get('retry-after')).toBe('5');
        expect(h.logs).toEqual(
          expect.arrayContaining([
            expect.objectContaining({
              event: 'keys.signing_unavailable',
              reason: 'token_missing',
              alg: 'PS256',
              kid: expect.any(String),
              tokenLabel: pkcs11.tokenLabel,
            }),
          ]),
        );
        expect(h.logs.filter((l) => l.event === 'server_error' || l.status === 500)).toEqual([]);
        expect(sampleSum(await scrapeMetrics(h), 'moat_signing_failures_total', { reason: 'token_missing' })).toBeGreaterThanOrEqual(1);
        // The public keys are Moat's to publish: the JWKS still answers.
        expect((await tpp.fetch(`${h.issuer}/jwks`)).status).toBe(200);

        // JARM §2.3: the authorization response must be signed; the customer gets the error page instead.
        const { requestUri } = await pushAuthorization(tpp, { extraParams: { response_mode: 'jwt' } });
        // The page says the bank is briefly unavailable (not that the TPP's request was bad); the log keeps the code.
        await expect(customerConsents(h, tpp, requestUri)).rejects.toThrow(
          /^consent did not redirect to the TPP: 503 [\s\S]*Our service is briefly unavailable/,
        );
        expect(h.logs.some((l) => l.event === 'request' && l.status === 503 && l.outcome === 'temporarily_unavailable')).toBe(true);

        putBack();
        restored = true;
        const retried = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
          [oauth.customFetch]: tpp.fetch,
        });
        const tokens = await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, retried);
        await expect(
          jwtVerify(tokens.id_token!, createLocalJWKSet(await publishedJwks(h, tpp)), { issuer: h.issuer, audience: tpp.client.client_id }),
        ).resolves.toBeDefined();
      } finally {
        if (!restored) putBack();
        await tpp.close();
      }
    });
  });

  describe('start-up without a usable token', () => {
    it('refuses to start with a wrong PIN, naming keys.pkcs11.pin', async () => {
      const pkcs11 = hsm.createToken('bad-pin');
      await expect(startMoat({ config: hsmKeys({ ...pkcs11, pin: '999999' }) })).rejects.toThrow(
        /^keys\.pkcs11\.pin: the token refused the PIN while opening a session with token "bad-pin-[0-9a-f]+" \(CKR_PIN_INCORRECT\)/,
      );
    });

    it('has moat start exit 1 saying why, the PIN given as MOAT_KEYS__PKCS11__PIN', async () => {
      const { library, tokenLabel } = hsm.createToken('cli-pin');
      const cwd = mkdtempSync(join(tmpdir(), 'moat-hsm-start-'));
      writeFileSync(join(cwd, 'moat.yaml'), JSON.stringify({ keys: { source: 'pkcs11', pkcs11: { library, tokenLabel } }, admin: { enabled: false } }));
      const r = await runMoat(['start'], { cwd, env: { MOAT_KEYS__PKCS11__PIN: '111111' } });
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        new RegExp(`^moat: could not start: keys\\.pkcs11\\.pin: the token refused the PIN while opening a session with token "${tokenLabel}"`),
      );
    });

    it('refuses to start when the token is missing, naming keys.pkcs11.tokenLabel', async () => {
      await expect(startMoat({ config: hsmKeys({ library: hsm.library, tokenLabel: 'never-initialised', pin: '123456' }) })).rejects.toThrow(
        /^keys\.pkcs11\.tokenLabel: no token labelled "never-initialised"/,
      );
    });
  });
});

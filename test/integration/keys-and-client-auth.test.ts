import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID, type webcrypto } from 'node:crypto';
import { decodeProtectedHeader, importJWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { loadOrCreateSigningKeys, rotateSigningKeys } from '../../src/keys/signing-keys.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, authorize, onboardTpp } from '../support/tpp-client.ts';

describe('signing key rotation', () => {
  let h: Harness;
  let oldKid: string;
  let newKid: string;

  beforeAll(async () => {
    const keysDir = mkdtempSync(join(tmpdir(), 'moat-keys-'));
    const { keys } = await loadOrCreateSigningKeys(keysDir, ['PS256', 'ES256', 'EdDSA']);
    oldKid = keys.find((k) => k.alg === 'PS256')!.kid;
    const rotation = await rotateSigningKeys(keysDir, ['PS256', 'ES256', 'EdDSA'], { retainSeconds: 600 });
    newKid = rotation.activated.find((k) => k.alg === 'PS256')!.kid;
    h = await startMoat({ config: { keys: { dir: keysDir } } });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('publishes the retired key for verification next to the new one, without private members', async () => {
    const tpp = await onboardTpp(h);
    try {
      const { keys } = (await (await tpp.fetch(`${h.issuer}/jwks`)).json()) as { keys: Record<string, unknown>[] };
      expect(keys).toHaveLength(6);
      expect(keys.find((k) => k.kid === newKid)).not.toHaveProperty('key_ops');
      expect(keys.find((k) => k.kid === oldKid)).toEqual(expect.objectContaining({ key_ops: ['verify'] }));
      expect(keys.some((k) => 'd' in k || 'p' in k)).toBe(false);
      expect(new Set(keys.map((k) => k.kid)).size).toBe(6);
    } finally {
      await tpp.close();
    }
  });

  it('signs new ID tokens with the new key only', async () => {
    const tpp = await onboardTpp(h);
    try {
      const { tokens } = await authorizationCodeFlow(h, tpp);
      expect(decodeProtectedHeader(tokens.id_token!)).toEqual(expect.objectContaining({ alg: 'PS256', kid: newKid }));
    } finally {
      await tpp.close();
    }
  });
});

describe('private_key_jwt client authentication (FAPI 2.0 SP §5.3.2.1)', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startMoat();
  });

  afterAll(async () => {
    await h?.close();
  });

  it('authenticates with a client assertion signed by the key from the software statement; the token is still certificate-bound', async () => {
    const tpp = await onboardTpp(h, { registration: { token_endpoint_auth_method: 'private_key_jwt', tls_client_auth_subject_dn: undefined } });
    try {
      const jwk = tpp.creds.signingJwks.keys[0]!;
      const key = { key: (await importJWK(jwk, 'ES256')) as webcrypto.CryptoKey, kid: jwk.kid };
      const auth = oauth.PrivateKeyJwt(key);
      const { params, codeVerifier } = await authorize(h, tpp, { auth });
      const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, auth, params, tpp.redirectUri, codeVerifier, {
        [oauth.customFetch]: tpp.fetch,
      });
      const tokens = await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, res);
      const introspection = await oauth.processIntrospectionResponse(
        tpp.as,
        tpp.client,
        await oauth.introspectionRequest(tpp.as, tpp.client, auth, tokens.access_token, { [oauth.customFetch]: tpp.fetch }),
      );
      expect(introspection).toEqual(expect.objectContaining({ active: true, cnf: { 'x5t#S256': tpp.creds.summary['x5t#S256'] } }));

      // The same client cannot fall back to mTLS client authentication.
      const wrong = await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.access_token, { [oauth.customFetch]: tpp.fetch });
      expect(wrong.status).toBe(401);
      expect(await wrong.json()).toEqual(expect.objectContaining({ error: 'invalid_client' }));
    } finally {
      await tpp.close();
    }
  });

  it('accepts one client assertion once, even sent five times at once (RFC 7523 §3 jti; FAPI 2.0 SP §5.3.2.1)', async () => {
    const tpp = await onboardTpp(h, { registration: { token_endpoint_auth_method: 'private_key_jwt', tls_client_auth_subject_dn: undefined } });
    try {
      const jwk = tpp.creds.signingJwks.keys[0]!;
      const now = Math.floor(Date.now() / 1000);
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
        .setIssuer(tpp.client.client_id)
        .setSubject(tpp.client.client_id)
        .setAudience(h.issuer)
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .setJti(randomUUID())
        .sign(await importJWK(jwk, 'ES256'));
      const body = new URLSearchParams({
        grant_type: 'client_credentials',
        scope: 'accounts',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }).toString();
      // Connections opened first, so the five requests reach the server together.
      await Promise.all(Array.from({ length: 5 }, async () => (await tpp.fetch(`${h.issuer}/jwks`)).arrayBuffer()));
      const results = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const res = await tpp.fetch(`${h.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
          return { status: res.status, body: (await res.json()) as Record<string, unknown> };
        }),
      );
      expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401]);
      for (const refused of results.filter((r) => r.status === 401)) {
        expect(refused.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
      }
    } finally {
      await tpp.close();
    }
  });
});

describe('refresh token rotation, when a bank turns it on', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startMoat({ config: { tokens: { refreshTokenRotation: true } } });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('lets exactly one of 20 racing refreshes use a refresh token, and a replay revokes the grant', async () => {
    const tpp = await onboardTpp(h);
    try {
      const { tokens } = await authorizationCodeFlow(h, tpp);
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.refresh_token!, { [oauth.customFetch]: tpp.fetch }),
        ),
      );
      const ok = results.filter((r) => r.status === 200);
      expect(ok).toHaveLength(1);
      for (const r of results.filter((x) => x.status !== 200)) {
        expect(r.status).toBe(400);
        expect(await r.json()).toEqual(expect.objectContaining({ error: 'invalid_grant' }));
      }
      const rotated = await oauth.processRefreshTokenResponse(tpp.as, tpp.client, ok[0]!);
      const introspection = await oauth.processIntrospectionResponse(
        tpp.as,
        tpp.client,
        await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), rotated.access_token, { [oauth.customFetch]: tpp.fetch }),
      );
      expect(introspection.active).toBe(false);
    } finally {
      await tpp.close();
    }
  });
});

describe('mTLS endpoint aliases (RFC 8705 §5)', () => {
  it('are published when the mTLS endpoints live on another host', async () => {
    const h = await startMoat({ config: { tls: { mtlsEndpointAliasOrigin: 'https://mtls.bank.example' } } });
    try {
      const tpp = await onboardTpp(h);
      expect(tpp.as.mtls_endpoint_aliases).toEqual(
        expect.objectContaining({
          token_endpoint: 'https://mtls.bank.example/token',
          pushed_authorization_request_endpoint: 'https://mtls.bank.example/par',
          introspection_endpoint: 'https://mtls.bank.example/introspect',
        }),
      );
      await tpp.close();
    } finally {
      await h.close();
    }
  });
});

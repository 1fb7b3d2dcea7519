import { X509Certificate, createHash } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, authorize, onboardTpp, tlsFetch, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * The core promise, end to end over real TLS with real client certificates: a sandbox TPP
 * registers with its SSA, runs PAR → authorize → login → consent → token, and receives an access
 * token bound to its certificate (RFC 8705 §3) that is useless with any other certificate.
 */

let h: Harness;
let tpp: RegisteredTpp;
let other: RegisteredTpp;

beforeAll(async () => {
  h = await startMoat();
  tpp = await onboardTpp(h);
  other = await onboardTpp(h);
});

afterAll(async () => {
  await tpp?.close();
  await other?.close();
  await h?.close();
});

function thumbprint(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
}

async function introspect(as: RegisteredTpp, token: string): Promise<Record<string, unknown>> {
  const res = await oauth.introspectionRequest(as.as, as.client, oauth.TlsClientAuth(), token, { [oauth.customFetch]: as.fetch });
  return oauth.processIntrospectionResponse(as.as, as.client, res) as Promise<Record<string, unknown>>;
}

describe('a certificate-bound access token (RFC 8705)', () => {
  let tokens: oauth.TokenEndpointResponse;

  beforeAll(async () => {
    ({ tokens } = await authorizationCodeFlow(h, tpp));
  });

  it('comes with an ID token and a refresh token, scoped to the resource server', () => {
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(typeof tokens.access_token).toBe('string');
    expect(typeof tokens.id_token).toBe('string');
    expect(typeof tokens.refresh_token).toBe('string');
    // RFC 8707: the access token is for the sandbox API; `openid` went into the ID token.
    expect(tokens.scope).toBe('accounts');
  });

  it('introspects as active with cnf.x5t#S256 of the TPP transport certificate', async () => {
    const result = await introspect(tpp, tokens.access_token);
    expect(result.active).toBe(true);
    expect(result.client_id).toBe(tpp.client.client_id);
    expect(result.cnf).toEqual({ 'x5t#S256': thumbprint(tpp.creds.certPem) });
    expect(result.aud).toBe(`${h.issuer}/sandbox-api`);
    expect(result.scope).toBe('accounts');
  });

  const callApi = (f: typeof tpp.fetch, token: string) => f(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${token}` } });

  it('is refused by the resource server when presented over another TPP certificate', async () => {
    const res = await callApi(other.fetch, tokens.access_token);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(
      /^Bearer error="invalid_token", error_description="this access token is bound to a different client certificate/,
    );
  });

  it('is refused by the resource server when presented with no certificate at all', async () => {
    const bare = tlsFetch(tpp.creds.serverCaPem);
    try {
      const res = await callApi(bare, tokens.access_token);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({
        error: 'invalid_token',
        error_description: 'this access token is bound to a client certificate; present it (RFC 8705 §3)',
      });
    } finally {
      await bare.close();
    }
  });

  it('works at the resource server over the certificate it is bound to', async () => {
    const res = await callApi(tpp.fetch, tokens.access_token);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { accounts: { accountId: string }[] } };
    expect(body.data.accounts.map((a) => a.accountId)).toEqual(['acc-alice-current', 'acc-alice-euro', 'acc-alice-savings']);
  });

  it('is not introspectable by another TPP (it learns nothing: active false)', async () => {
    const result = await introspect(other, tokens.access_token);
    expect(result.active).toBe(false);
  });

  it('cannot be revoked by another TPP (RFC 7009 §2.1: only the client it was issued to)', async () => {
    const res = await oauth.revocationRequest(other.as, other.client, oauth.TlsClientAuth(), tokens.access_token, { [oauth.customFetch]: other.fetch });
    expect(res.status).toBeGreaterThanOrEqual(200);
    expect((await introspect(tpp, tokens.access_token)).active).toBe(true);
  });

  it('refuses the refresh token from another client with invalid_grant', async () => {
    const res = await oauth.refreshTokenGrantRequest(other.as, other.client, oauth.TlsClientAuth(), tokens.refresh_token!, {
      [oauth.customFetch]: other.fetch,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual(expect.objectContaining({ error: 'invalid_grant' }));
  });

  it('refreshes over the bound certificate into a new token bound to the same certificate', async () => {
    const res = await oauth.refreshTokenGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.refresh_token!, { [oauth.customFetch]: tpp.fetch });
    const refreshed = await oauth.processRefreshTokenResponse(tpp.as, tpp.client, res);
    const result = await introspect(tpp, refreshed.access_token);
    expect(result.cnf).toEqual({ 'x5t#S256': thumbprint(tpp.creds.certPem) });
  });
});

describe('authorization codes (FAPI 2.0 SP §5.3.2.1: single use)', () => {
  it('lets exactly one of 20 racing token requests redeem a code', async () => {
    const { params, codeVerifier } = await authorize(h, tpp);
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
          [oauth.customFetch]: tpp.fetch,
        }),
      ),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 400)).toHaveLength(19);
    for (const r of results.filter((x) => x.status === 400)) {
      expect(await r.json()).toEqual(expect.objectContaining({ error: 'invalid_grant' }));
    }
  });

  it('stays redeemable when the token request fails inside Moat after taking the code', async () => {
    const { params, codeVerifier } = await authorize(h, tpp);
    const redeem = () =>
      oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, { [oauth.customFetch]: tpp.fetch });
    // A store refusing the refresh token's write (a real Postgres or PGlite error): the failure
    // comes after oidc-provider has consumed the code and saved the access token.
    await h.moat.storage.sql.query("ALTER TABLE oidc_model ADD CONSTRAINT test_refuses_refresh_tokens CHECK (model <> 'RefreshToken') NOT VALID");
    let failed: Response;
    try {
      failed = await redeem();
    } finally {
      await h.moat.storage.sql.query('ALTER TABLE oidc_model DROP CONSTRAINT test_refuses_refresh_tokens');
    }
    expect(failed.status).toBe(500);
    expect(h.logs).toContainEqual(expect.objectContaining({ event: 'token.code_given_back', clientId: tpp.client.client_id }));
    const retried = await redeem();
    expect(retried.status).toBe(200);
    const tokens = await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, retried);
    expect((await introspect(tpp, tokens.access_token)).active).toBe(true);
    // And it is single-use again once redeemed.
    expect((await redeem()).status).toBe(400);
  });

  it('revokes the tokens issued from a code when the code is replayed', async () => {
    const { params, codeVerifier } = await authorize(h, tpp);
    const first = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
      [oauth.customFetch]: tpp.fetch,
    });
    const tokens = await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, first);
    expect((await introspect(tpp, tokens.access_token)).active).toBe(true);

    const replay = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
      [oauth.customFetch]: tpp.fetch,
    });
    expect(replay.status).toBe(400);
    expect(await replay.json()).toEqual({ error: 'invalid_grant', error_description: 'grant request is invalid' });
    expect((await introspect(tpp, tokens.access_token)).active).toBe(false);
  });
});

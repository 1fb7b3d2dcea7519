import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { issueLeaf } from '../../src/sandbox/certificate-issuing.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import * as x509 from '../../src/pki/x509.ts';
import { authorizationCodeFlow, discover, issueTpp, tlsFetch, type RegisteredTpp, type TppCredentials } from '../support/tpp-client.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';

/*
 * Onboarding as the ecosystems specify it: a signed registration request (UK OBIE DCR,
 * Content-Type application/jwt) and RFC 7592 management — read, update (every check re-run, the
 * subject DN never widened), certificate rotation without downtime, delete that ends every token.
 */

let h: Harness;
beforeAll(async () => {
  h = await startMoat();
});
afterAll(async () => {
  await h.close();
});

async function signedRequest(
  creds: TppCredentials,
  claims: Record<string, unknown> = {},
  options: { key?: JWK & { kid: string }; exp?: number } = {},
): Promise<string> {
  const key = options.key ?? creds.signingJwks.keys[0]!;
  const softwareId = creds.summary.software_id as string;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...creds.registration, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(softwareId)
    .setAudience(h.issuer)
    .setIssuedAt(now)
    .setExpirationTime(options.exp ?? now + 300)
    .setJti(randomUUID())
    .sign(await importJWK(key, 'ES256'));
}

async function post(creds: TppCredentials, body: string, type = 'application/jwt', cert: { certPem: string; keyPem: string } = creds) {
  const f = tlsFetch(creds.serverCaPem, cert);
  try {
    const res = await f(`${h.issuer}/register`, { method: 'POST', headers: { 'content-type': type }, body });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  } finally {
    await f.close();
  }
}

describe('signed registration requests (UK OBIE DCR: application/jwt)', () => {
  it('registers a client from a request signed with a key of the software statement', async () => {
    const creds = await issueTpp(h);
    const res = await post(creds, await signedRequest(creds));
    expect(res.body.error_description).toBeUndefined();
    expect(res.status).toBe(201);
    expect(res.body).toEqual(
      expect.objectContaining({ client_id: expect.any(String), token_endpoint_auth_method: 'tls_client_auth', registration_access_token: expect.any(String) }),
    );
  });

  it('refuses a replayed request (the same jti twice)', async () => {
    const creds = await issueTpp(h);
    const jwt = await signedRequest(creds);
    expect((await post(creds, jwt)).status).toBe(201);
    const again = await post(creds, jwt);
    expect(again.status).toBe(400);
    expect(again.body.error_description).toMatch(/already used; sign each request with a new jti/);
  });

  it('takes an exp with a fraction of a second (RFC 7519 NumericDate) and still refuses its replay', async () => {
    const creds = await issueTpp(h);
    const jwt = await signedRequest(creds, {}, { exp: Date.now() / 1000 + 300.25 });
    expect((await post(creds, jwt)).status).toBe(201);
    const again = await post(creds, jwt);
    expect(again.status).toBe(400);
    expect(again.body.error_description).toMatch(/already used/);
  });

  it('registers a request sent five times at once exactly once (the jti is claimed atomically)', async () => {
    const creds = await issueTpp(h);
    const jwt = await signedRequest(creds);
    const results = await Promise.all(Array.from({ length: 5 }, () => post(creds, jwt)));
    expect(results.map((r) => r.status).sort()).toEqual([201, 400, 400, 400, 400]);
    for (const refused of results.filter((r) => r.status === 400)) expect(refused.body.error_description).toMatch(/already used/);
  });

  it.each([
    [
      'signed with a key the software statement does not hold',
      async (creds: TppCredentials) => {
        const other = await issueTpp(h);
        return signedRequest(creds, {}, { key: other.signingJwks.keys[0]! });
      },
      /signed with a key the software statement's JWKS does not hold/,
    ],
    [
      'for another audience',
      async (creds: TppCredentials) =>
        new SignJWT({ ...creds.registration })
          .setProtectedHeader({ alg: 'ES256', kid: creds.signingJwks.keys[0]!.kid })
          .setIssuer(creds.summary.software_id as string)
          .setAudience('https://other-bank.example')
          .setIssuedAt()
          .setExpirationTime('5m')
          .setJti(randomUUID())
          .sign(await importJWK(creds.signingJwks.keys[0]!, 'ES256')),
      /aud must be this server's issuer/,
    ],
    [
      'from another software id',
      async (creds: TppCredentials) =>
        new SignJWT({ ...creds.registration })
          .setProtectedHeader({ alg: 'ES256', kid: creds.signingJwks.keys[0]!.kid })
          .setIssuer('someone-else')
          .setAudience(h.issuer)
          .setIssuedAt()
          .setExpirationTime('5m')
          .setJti(randomUUID())
          .sign(await importJWK(creds.signingJwks.keys[0]!, 'ES256')),
      /iss must be the software statement's software_id/,
    ],
    ['that has expired', async (creds: TppCredentials) => signedRequest(creds, {}, { exp: Math.floor(Date.now() / 1000) - 60 }), /has expired/],
    [
      'without a jti',
      async (creds: TppCredentials) =>
        new SignJWT({ ...creds.registration })
          .setProtectedHeader({ alg: 'ES256', kid: creds.signingJwks.keys[0]!.kid })
          .setIssuer(creds.summary.software_id as string)
          .setAudience(h.issuer)
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(await importJWK(creds.signingJwks.keys[0]!, 'ES256')),
      /jti/,
    ],
  ])('refuses a request %s, saying why', async (_name, make, message) => {
    const creds = await issueTpp(h);
    const res = await post(creds, await make(creds));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.error_description).toMatch(message);
  });

  it('refuses a body that is not a JWT', async () => {
    const creds = await issueTpp(h);
    const res = await post(creds, 'not-a-jwt');
    expect(res).toEqual({ status: 400, body: { error: 'invalid_request', error_description: expect.stringMatching(/not a JWT/) } });
  });
});

describe('RFC 7592 management', () => {
  let creds: TppCredentials;
  let clientId: string;
  let rat: string;
  let uri: string;
  beforeEach(async () => {
    creds = await issueTpp(h);
    const res = await post(creds, JSON.stringify(creds.registration), 'application/json');
    ({ client_id: clientId, registration_access_token: rat, registration_client_uri: uri } = res.body);
  });

  async function manage(method: 'GET' | 'PUT' | 'DELETE', token: string, body?: Record<string, unknown>, cert: { certPem: string; keyPem: string } = creds) {
    const f = tlsFetch(creds.serverCaPem, cert);
    try {
      const res = await f(uri, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: res.status === 204 ? {} : ((await res.json()) as Record<string, any>) };
    } finally {
      await f.close();
    }
  }

  it.each(['PUT', 'DELETE'])('answers %s on a client path that is not percent-encoded UTF-8 with 400, without a certificate or token', async (method) => {
    const bare = tlsFetch(creds.serverCaPem);
    try {
      const res = await bare(`${h.issuer}/register/%zz`, { method });
      expect({ status: res.status, body: await res.json() }).toEqual({
        status: 400,
        body: { error: 'invalid_request', error_description: 'the client id in the path is not percent-encoded UTF-8 (RFC 3986 §2.1)' },
      });
    } finally {
      await bare.close();
    }
  });

  it('reads the registration with the registration access token, and nothing without it', async () => {
    const read = await manage('GET', rat);
    expect(read.status).toBe(200);
    expect(read.body.client_id).toBe(clientId);
    expect((await manage('GET', 'not-the-token')).status).toBe(401);
  });

  it('updates after re-running every check, and rotates the registration access token', async () => {
    const updated = await manage('PUT', rat, { ...creds.registration, client_id: clientId, scope: 'openid accounts' });
    expect(updated.status).toBe(200);
    expect(updated.body.scope).toBe('openid accounts');
    expect(updated.body.registration_access_token).not.toBe(rat);
    expect((await manage('GET', rat)).status).toBe(401);
    const bad = await manage('PUT', updated.body.registration_access_token as string, {
      ...creds.registration,
      client_id: clientId,
      redirect_uris: ['https://evil.example/cb'],
    });
    expect(bad).toEqual({
      status: 400,
      body: {
        error: 'invalid_redirect_uri',
        error_description: "redirect_uri https://evil.example/cb is not among the software statement's software_redirect_uris",
      },
    });
  });

  it("accepts an update that sends back the registration it was given, the statement's values included (RFC 7592 §2.2, RFC 7591 §2.3)", async () => {
    const read = await manage('GET', rat);
    const { registration_access_token: _t, registration_client_uri: _u, client_id_issued_at: _i, client_secret_expires_at: _e, ...registered } = read.body;
    expect(registered).toEqual(
      expect.objectContaining({ jwks: expect.any(Object), software_id: creds.summary.software_id, org_id: creds.summary.org_id, client_name: 'Test Fintech' }),
    );
    const updated = await manage('PUT', rat, { ...registered, software_statement: creds.ssa });
    expect(updated.body.error_description).toBeUndefined();
    expect(updated.status).toBe(200);
    expect(updated.body.jwks).toEqual(registered.jwks);
  });

  it("refuses an update without the token, with another client's token, or for other software", async () => {
    expect((await manage('PUT', 'nope', { ...creds.registration, client_id: clientId })).status).toBe(401);
    const other = await issueTpp(h);
    const otherReg = await post(other, JSON.stringify(other.registration), 'application/json');
    expect((await manage('PUT', otherReg.body.registration_access_token as string, { ...creds.registration, client_id: clientId })).status).toBe(401);
  });

  it('never lets a client widen its subject DN to a certificate it does not hold', async () => {
    const res = await manage('PUT', rat, { ...creds.registration, client_id: clientId, tls_client_auth_subject_dn: 'CN=*,OU=other-org,O=Anyone,C=GB' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client_metadata');
    expect(res.body.error_description).toMatch(/tls_client_auth_subject_dn does not match the presented certificate's subject/);
    const method = await manage('PUT', rat, { ...creds.registration, client_id: clientId, token_endpoint_auth_method: 'private_key_jwt' });
    expect(method.body.error_description).toBe('token_endpoint_auth_method cannot change from tls_client_auth in an update; register a new client');
  });

  it('rotates the transport certificate without downtime: both work during the overlap, then the old one is retired', async () => {
    const material = await ensureSandboxMaterial(h.config.dataDir);
    const next = await issueLeaf(
      { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem },
      {
        subject: new x509.X509Certificate(creds.certPem).subjectName.toJSON(),
        usage: 'clientAuth',
        now: new Date(),
      },
    );
    const oldThumbprint = creds.summary['x5t#S256'] as string;
    const update = await manage('PUT', rat, { ...creds.registration, client_id: clientId }, next);
    expect(update.status).toBe(200);
    const certificates = await h.moat.certificates.registry.list({ clientId });
    expect(certificates.filter((c) => c.usage === 'transport')).toHaveLength(2);

    const tppWith = async (cert: { certPem: string; keyPem: string }): Promise<RegisteredTpp> => {
      const f = tlsFetch(creds.serverCaPem, cert);
      return {
        creds,
        client: update.body as unknown as oauth.Client,
        as: await discover(h, f),
        fetch: f,
        redirectUri: creds.registration.redirect_uris as string,
        close: () => f.close(),
      } as RegisteredTpp;
    };
    const oldTpp = await tppWith(creds);
    const newTpp = await tppWith(next);
    try {
      const { tokens } = await authorizationCodeFlow(h, { ...oldTpp, redirectUri: (creds.registration.redirect_uris as string[])[0]! });
      const introspect = async (as: RegisteredTpp, token: string) =>
        oauth.processIntrospectionResponse(
          as.as,
          as.client,
          await oauth.introspectionRequest(as.as, as.client, oauth.TlsClientAuth(), token, { [oauth.customFetch]: as.fetch }),
        );
      expect((await introspect(newTpp, tokens.access_token)).active).toBe(true);

      expect(await h.moat.certificates.registry.retire(oldThumbprint, 'rotation complete')).toBe(true);
      expect((await introspect(newTpp, tokens.access_token)).active).toBe(false);
      const cc = (as: RegisteredTpp) =>
        oauth.clientCredentialsGrantRequest(as.as, as.client, oauth.TlsClientAuth(), new URLSearchParams({ scope: 'accounts' }), {
          [oauth.customFetch]: as.fetch,
        });
      expect((await cc(oldTpp)).status).toBe(401);
      expect((await cc(newTpp)).status).toBe(200);
    } finally {
      await oldTpp.close();
      await newTpp.close();
    }
  });

  it('deletes the client, revoking its consents and every token it holds', async () => {
    const f = tlsFetch(creds.serverCaPem, creds);
    const tpp = {
      creds,
      client: { client_id: clientId, token_endpoint_auth_method: 'tls_client_auth' } as oauth.Client,
      as: await discover(h, f),
      fetch: f,
      redirectUri: (creds.registration.redirect_uris as string[])[0]!,
      close: () => f.close(),
    } as RegisteredTpp;
    try {
      const { tokens } = await authorizationCodeFlow(h, tpp);
      const consentId = (tokens as Record<string, unknown>).consent_id as string;
      const api = () => f(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect((await api()).status).toBe(200);
      expect((await manage('DELETE', rat)).status).toBe(204);
      expect((await api()).status).toBe(401);
      expect((await h.moat.consents.getForClient(consentId, clientId)).status).toBe('Revoked');
      expect((await manage('GET', rat)).status).toBe(401);
    } finally {
      await tpp.close();
    }
  });
});

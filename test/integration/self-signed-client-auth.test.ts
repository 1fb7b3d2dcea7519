import { X509Certificate } from 'node:crypto';
import { importJWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { createCa } from '../../src/sandbox/certificate-issuing.ts';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorize, discover, issueTpp, registerTpp, tlsFetch, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * self_signed_tls_client_auth (RFC 8705 §2.2): the client authenticates with a self-signed
 * certificate whose key its directory vouched for (x5c in the software statement's JWKS).
 */

let h: Harness;

beforeAll(async () => {
  h = await startMoat();
});

afterAll(async () => {
  await h?.close();
});

it('authenticates a client by a self-signed certificate registered in its JWKS, and binds its tokens to it', async () => {
  const creds = await issueTpp(h);
  const selfSigned = await createCa([{ CN: ['tpp self-signed'] }], new Date());
  const cert = new X509Certificate(selfSigned.certPem);
  const certJwk = { ...cert.publicKey.export({ format: 'jwk' }), kid: 'self-signed', use: 'sig', x5c: [cert.raw.toString('base64')] };
  const material = await ensureSandboxMaterial(h.config.dataDir);
  const ssa = await new SignJWT({
    software_id: creds.summary.software_id,
    org_id: creds.summary.org_id,
    org_status: 'Active',
    software_roles: ['AISP', 'PISP'],
    software_redirect_uris: ['https://localhost:3000/callback'],
    software_client_name: 'Self-signed TPP',
    software_jwks: { keys: [...creds.signingJwks.keys.map(({ d: _d, ...pub }) => pub), certJwk] },
  })
    .setProtectedHeader({ alg: 'ES256', kid: material.directory.privateJwk.kid })
    .setIssuer('moat-sandbox-directory')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(await importJWK(material.directory.privateJwk, 'ES256'));

  const reg = await registerTpp(h, creds, {
    software_statement: ssa,
    token_endpoint_auth_method: 'self_signed_tls_client_auth',
    tls_client_auth_subject_dn: undefined,
  });
  expect(reg).toEqual(expect.objectContaining({ status: 201 }));

  const f = tlsFetch(creds.serverCaPem, selfSigned);
  const tpp: RegisteredTpp = {
    creds,
    client: reg.body as unknown as oauth.Client,
    as: await discover(h, f),
    fetch: f,
    redirectUri: 'https://localhost:3000/callback',
    close: () => f.close(),
  };
  try {
    const { params, codeVerifier } = await authorize(h, tpp);
    const tokens = await oauth.processAuthorizationCodeResponse(
      tpp.as,
      tpp.client,
      await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, { [oauth.customFetch]: f }),
    );
    const introspection = await oauth.processIntrospectionResponse(
      tpp.as,
      tpp.client,
      await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.access_token, { [oauth.customFetch]: f }),
    );
    expect(introspection.cnf).toEqual({ 'x5t#S256': Buffer.from(cert.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url') });

    // Another self-signed certificate is not this client.
    const stranger = await createCa([{ CN: ['stranger'] }], new Date());
    const g = tlsFetch(creds.serverCaPem, stranger);
    try {
      const res = await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), tokens.access_token, { [oauth.customFetch]: g });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual(expect.objectContaining({ error: 'invalid_client' }));
    } finally {
      await g.close();
    }
  } finally {
    await tpp.close();
  }
});

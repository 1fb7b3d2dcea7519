import { X509Certificate } from 'node:crypto';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { issueTpp, tlsFetch } from '../support/tpp-client.ts';

/*
 * Discovery metadata (RFC 8414 / OpenID Discovery) says exactly what Moat enforces, and the JWKS
 * holds only what FAPI 2.0 SP §5.4 allows.
 */

let h: Harness;
let metadata: Record<string, unknown>;
let jwks: { keys: Record<string, unknown>[] };

const FAPI_ALGS = ['PS256', 'ES256', 'EdDSA'];

beforeAll(async () => {
  h = await startMoat();
  const { serverCaPem } = await issueTpp(h);
  const f = tlsFetch(serverCaPem);
  try {
    metadata = (await (await f(`${h.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    jwks = (await (await f(String(metadata.jwks_uri))).json()) as typeof jwks;
  } finally {
    await f.close();
  }
});

afterAll(async () => {
  await h?.close();
});

describe('discovery metadata', () => {
  it('names the issuer and the endpoints', () => {
    expect(metadata).toEqual(
      expect.objectContaining({
        issuer: h.issuer,
        pushed_authorization_request_endpoint: `${h.issuer}/par`,
        authorization_endpoint: `${h.issuer}/authorize`,
        token_endpoint: `${h.issuer}/token`,
        introspection_endpoint: `${h.issuer}/introspect`,
        revocation_endpoint: `${h.issuer}/revoke`,
        registration_endpoint: `${h.issuer}/register`,
        jwks_uri: `${h.issuer}/jwks`,
      }),
    );
  });

  it('requires PAR, PKCE S256 and the code flow only (FAPI 2.0 SP §5.3.2.2)', () => {
    expect(metadata.require_pushed_authorization_requests).toBe(true);
    expect(metadata.code_challenge_methods_supported).toEqual(['S256']);
    expect(metadata.response_types_supported).toEqual(['code']);
    expect(metadata.authorization_response_iss_parameter_supported).toBe(true);
  });

  it('lists the languages of the customer pages as ui_locales_supported (OIDC Discovery 1.0 §3)', () => {
    expect(metadata.ui_locales_supported).toEqual(['en', 'pt-BR']);
  });

  it('offers only mTLS and private_key_jwt client authentication (FAPI 2.0 SP §5.3.2.1)', () => {
    expect(metadata.token_endpoint_auth_methods_supported).toEqual(['tls_client_auth', 'self_signed_tls_client_auth', 'private_key_jwt']);
  });

  it('offers sender-constrained tokens: certificate-bound and DPoP', () => {
    expect(metadata.tls_client_certificate_bound_access_tokens).toBe(true);
    expect(metadata.dpop_signing_alg_values_supported).toEqual(FAPI_ALGS);
  });

  it('lists only PS256, ES256 and EdDSA wherever it lists signing algorithms (FAPI 2.0 SP §5.4.1)', () => {
    const lists = Object.entries(metadata).filter(([k]) => k.endsWith('_alg_values_supported'));
    expect(lists.length).toBeGreaterThanOrEqual(6);
    for (const [, values] of lists) expect(values).toEqual(FAPI_ALGS);
  });

  it('offers no password or implicit grant (decoupled authorisation, CIBA, is on by default)', () => {
    expect(metadata.grant_types_supported).toEqual(['authorization_code', 'refresh_token', 'client_credentials', 'urn:openid:params:grant-type:ciba']);
  });

  it('publishes no mtls_endpoint_aliases when mTLS is served on the issuer host', () => {
    expect(metadata).not.toHaveProperty('mtls_endpoint_aliases');
  });
});

describe('the JWKS', () => {
  it('holds one public key per FAPI algorithm, with unique kids and no private members', () => {
    expect(jwks.keys.map((k) => k.alg).sort()).toEqual(['ES256', 'EdDSA', 'PS256']);
    expect(new Set(jwks.keys.map((k) => k.kid)).size).toBe(jwks.keys.length);
    for (const key of jwks.keys) {
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(key).not.toHaveProperty(member);
      expect(key.use).toBe('sig');
    }
  });

  it('holds RSA keys of at least 2048 bits (FAPI 2.0 SP §5.4.1)', () => {
    const rsa = jwks.keys.find((k) => k.kty === 'RSA')!;
    expect(Buffer.from(String(rsa.n), 'base64url').length * 8).toBeGreaterThanOrEqual(2048);
  });
});

describe('the server certificate', () => {
  it('is the sandbox certificate, verified for localhost and 127.0.0.1 against server-ca.pem', async () => {
    const { serverCaPem } = await issueTpp(h);
    expect(new X509Certificate(serverCaPem).ca).toBe(true);
    const f = tlsFetch(serverCaPem);
    try {
      for (const host of ['localhost', '127.0.0.1']) expect((await f(`https://${host}:${h.port}/healthz`)).status).toBe(200);
    } finally {
      await f.close();
    }
  });
});

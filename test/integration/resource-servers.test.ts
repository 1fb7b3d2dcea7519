import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { issueLeaf } from '../../src/sandbox/certificate-issuing.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorizationCodeFlow, onboardTpp, tlsFetch, type FetchLike, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * Resource servers (RFC 8707): per resource server, opaque tokens introspected (RFC 7662, signed
 * responses per RFC 9701) or RFC 9068 JWT access tokens; each resource server authenticates to
 * introspection with its own certificate and sees only tokens meant for it.
 */

const ACCOUNTS = 'https://api.bank.example/accounts';
const PAYMENTS = 'https://api.bank.example/payments';

let h: Harness;
let tpp: RegisteredTpp;
let accountsRs: FetchLike & { close(): Promise<void> };
let paymentsRs: FetchLike & { close(): Promise<void> };

beforeAll(async () => {
  h = await startMoat({
    config: {
      resourceServers: [
        {
          identifier: ACCOUNTS,
          scopes: ['accounts'],
          accessTokenFormat: 'jwt',
          client: { clientId: 'rs-accounts', tlsClientAuthSubjectDn: 'CN=rs-accounts,O=Moat Bank,C=GB' },
        },
        {
          identifier: PAYMENTS,
          scopes: ['payments'],
          accessTokenFormat: 'opaque',
          accessTokenTtl: 120,
          client: { clientId: 'rs-payments', tlsClientAuthSubjectDn: 'CN=rs-payments,O=Moat Bank,C=GB' },
        },
      ],
    },
  });
  const material = await ensureSandboxMaterial(h.config.dataDir);
  const ca = { certPem: material.tppCaPem, keyPem: material.tppCaKeyPem };
  const rsCert = async (cn: string) => {
    const c = await issueLeaf(ca, { subject: [{ C: ['GB'] }, { O: ['Moat Bank'] }, { CN: [cn] }], usage: 'clientAuth', now: new Date() });
    return tlsFetch(material.serverCaPem, { certPem: c.certPem, keyPem: c.keyPem });
  };
  accountsRs = await rsCert('rs-accounts');
  paymentsRs = await rsCert('rs-payments');
  tpp = await onboardTpp(h);
});

afterAll(async () => {
  await accountsRs?.close();
  await paymentsRs?.close();
  await tpp?.close();
  await h?.close();
});

async function introspect(f: FetchLike, clientId: string, token: string, accept = 'application/json') {
  return f(`${h.issuer}/introspect`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept },
    body: new URLSearchParams({ client_id: clientId, token }).toString(),
  });
}

async function jwks() {
  return createLocalJWKSet((await (await tpp.fetch(`${h.issuer}/jwks`)).json()) as Parameters<typeof createLocalJWKSet>[0]);
}

describe('a resource server with JWT access tokens (RFC 9068)', () => {
  it('receives a signed at+jwt carrying audience, scope, client and the certificate binding', async () => {
    const { tokens } = await authorizationCodeFlow(h, tpp, { extraParams: { resource: ACCOUNTS } });
    expect(decodeProtectedHeader(tokens.access_token)).toEqual(expect.objectContaining({ typ: 'at+jwt', alg: 'PS256' }));
    const { payload } = await jwtVerify(tokens.access_token, await jwks(), { issuer: h.issuer, audience: ACCOUNTS, typ: 'at+jwt' });
    expect(payload).toEqual(
      expect.objectContaining({ client_id: tpp.client.client_id, scope: 'accounts', sub: 'cust-alice', cnf: { 'x5t#S256': expect.any(String) } }),
    );
  });
});

describe('a resource server with opaque tokens', () => {
  let token: string;

  beforeAll(async () => {
    ({
      tokens: { access_token: token },
    } = await authorizationCodeFlow(h, tpp, { scope: 'openid payments', extraParams: { resource: PAYMENTS } }));
  });

  it('introspects a token meant for it, with its own certificate (RFC 7662)', async () => {
    const res = await introspect(paymentsRs, 'rs-payments', token);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual(
      expect.objectContaining({ active: true, aud: PAYMENTS, scope: 'payments', client_id: tpp.client.client_id, cnf: { 'x5t#S256': expect.any(String) } }),
    );
    expect((body.exp as number) - (body.iat as number)).toBe(120);
  });

  it('gets a signed introspection response when it asks for one (RFC 9701)', async () => {
    const res = await introspect(paymentsRs, 'rs-payments', token, 'application/token-introspection+jwt');
    expect(res.headers.get('content-type')).toMatch(/^application\/token-introspection\+jwt/);
    const { payload } = await jwtVerify(await res.text(), await jwks(), { issuer: h.issuer, audience: 'rs-payments', typ: 'token-introspection+jwt' });
    expect(payload.token_introspection).toEqual(expect.objectContaining({ active: true, aud: PAYMENTS }));
  });

  it('learns nothing about it when it is another resource server', async () => {
    const res = await introspect(accountsRs, 'rs-accounts', token);
    expect(await res.json()).toEqual({ active: false });
  });

  it('cannot introspect as a resource server without that resource server certificate', async () => {
    const res = await introspect(tpp.fetch, 'rs-payments', token);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual(expect.objectContaining({ error: 'invalid_client' }));
  });

  it('sees it inactive once the TPP revoked it (RFC 7009)', async () => {
    const revoke = await oauth.revocationRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), token, { [oauth.customFetch]: tpp.fetch });
    await oauth.processRevocationResponse(revoke);
    expect(await (await introspect(paymentsRs, 'rs-payments', token)).json()).toEqual({ active: false });
  });
});

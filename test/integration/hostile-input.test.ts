import { generateKeyPair, SignJWT } from 'jose';
import type { Harness } from '../support/moat-harness.ts';
import { issueTpp, registerTpp, type RegisteredTpp, tlsFetch, useMoatWithTpp } from '../support/tpp-client.ts';

/*
 * Malformed and hostile input to every endpoint gets a standard error: never a 5xx, a stack trace
 * or an internal message. (A property-based fuzzer is the resilience issue's; this is the fixed
 * table every build must pass.)
 */

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

const ENDPOINTS = ['/par', '/token', '/introspect', '/revoke', '/register', '/userinfo', '/interaction/x/login', '/interaction/x/consent'];
const BODIES: [string, string][] = [
  ['empty', ''],
  ['empty object', '{}'],
  ['JSON array', '[1,2]'],
  ['broken percent-encoding', 'a=%%%&b=%ZZ'],
  ['oversized', 'a'.repeat(70_000)],
  ['duplicate parameters', 'client_id=a&client_id=b&grant_type=authorization_code&grant_type=refresh_token'],
  ['NUL and control bytes', 'client_id=\u0000\u0001&scope=\u0007'],
  ['deeply nested JSON', `${'['.repeat(5000)}${']'.repeat(5000)}`],
];
const TYPES = ['application/x-www-form-urlencoded', 'application/json', 'text/plain', 'application/jwt'];

function assertStandardError(status: number, text: string, what: string): void {
  expect({ what, status: status < 500 }).toEqual({ what, status: true });
  expect(text).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/);
  expect(text).not.toMatch(/node_modules|\/src\/|TypeError|SyntaxError|ReferenceError/);
  if (text.startsWith('{')) {
    const body = JSON.parse(text) as { error?: unknown };
    expect(typeof body.error).toBe('string');
  }
}

describe('hostile POST bodies', () => {
  it.each(ENDPOINTS)('%s answers every malformed body with a standard error', async (path) => {
    for (const [label, body] of BODIES) {
      for (const type of TYPES) {
        const res = await tpp.fetch(`${h.issuer}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
        assertStandardError(res.status, await res.text(), `${path} ${type} ${label}`);
      }
    }
  });
});

describe('hostile requests without a client certificate', () => {
  it.each([
    '/authorize?client_id=unknown&request_uri=urn:ietf:params:oauth:request_uri:x',
    '/authorize?request_uri=%ZZ',
    '/authorize?client_id[]=a&client_id[]=b',
    '/interaction/..%2F..%2Fetc%2Fpasswd',
    '/sandbox-api/accounts',
    '/jwks?x=%',
    '/register/abc',
    '/.well-known/openid-configuration/../../x',
  ])('GET %s answers with a standard error', async (path) => {
    const bare = tlsFetch(tpp.creds.serverCaPem);
    try {
      const res = await bare(`${h.issuer}${path}`, { headers: { authorization: 'Bearer \u0000', 'x-fapi-interaction-id': '\u0000' } });
      assertStandardError(res.status, await res.text(), path);
    } catch (err) {
      // undici refuses to send some of these header values itself; that is not Moat's answer.
      expect((err as Error).message).toMatch(/header|invalid/i);
    } finally {
      await bare.close();
    }
  });
});

describe('text no store can hold: NUL, unpaired UTF-16 surrogates, bytes that are not UTF-8', () => {
  const form = (pairs: string) =>
    `client_id=${encodeURIComponent(tpp.client.client_id)}&response_type=code&scope=openid%20accounts` +
    `&redirect_uri=${encodeURIComponent(tpp.redirectUri)}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&${pairs}`;
  async function post(path: string, body: string | Uint8Array, type: string) {
    const res = await tpp.fetch(`${h.issuer}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it.each([
    ['logo_uri', { logo_uri: 'https://a.example/\u0000x' }, 'logo_uri must not contain a NUL character (U+0000)'],
    ['client_uri', { client_uri: 'https://a.example/\ud800' }, 'client_uri must not contain an unpaired UTF-16 surrogate (it is not Unicode text)'],
    ['tos_uri', { tos_uri: 'https://a.example/\u0000' }, 'tos_uri must not contain a NUL character (U+0000)'],
    ['contacts', { contacts: ['ops@a.example', 'x\udfff'] }, 'contacts[1] must not contain an unpaired UTF-16 surrogate (it is not Unicode text)'],
  ])('refuses a registration whose %s cannot be stored with 400 invalid_client_metadata naming it (RFC 7591 §3.2.2)', async (_field, metadata, description) => {
    const creds = await issueTpp(h, { roles: ['AISP'] });
    expect(await registerTpp(h, creds, metadata)).toEqual({ status: 400, body: { error: 'invalid_client_metadata', error_description: description } });
  });

  it('refuses a registration body that is not UTF-8 (an overlong encoding)', async () => {
    const creds = await issueTpp(h, { roles: ['AISP'] });
    const json = Buffer.from(JSON.stringify({ ...creds.registration, client_name: 'XX' }));
    const at = json.indexOf('"XX"') + 1;
    json[at] = 0xc0;
    json[at + 1] = 0x80;
    const f = tlsFetch(creds.serverCaPem, creds);
    try {
      const res = await f(`${h.issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: json });
      expect({ status: res.status, body: await res.json() }).toEqual({
        status: 400,
        body: { error: 'invalid_client_metadata', error_description: 'the request body is not UTF-8' },
      });
    } finally {
      await f.close();
    }
  });

  it.each([
    ['a NUL in the nonce', 'nonce=n%00x', 'nonce must not contain a NUL character (U+0000)'],
    ['an encoded surrogate in the state', 'state=%ED%A0%80', 'state is not UTF-8 once percent-decoded'],
    ['an overlong NUL in the nonce', 'nonce=%C0%80', 'nonce is not UTF-8 once percent-decoded'],
    [
      'an unpaired surrogate inside the claims request',
      `claims=${encodeURIComponent('{"id_token":{"acr":{"value":"\\ud800"}}}')}`,
      'claims.id_token.acr.value must not contain an unpaired UTF-16 surrogate (it is not Unicode text)',
    ],
  ])('refuses a PAR with %s with 400 invalid_request naming the parameter (RFC 9126 §2.3)', async (_what, pairs, description) => {
    expect(await post('/par', form(pairs), 'application/x-www-form-urlencoded')).toEqual({
      status: 400,
      body: { error: 'invalid_request', error_description: description },
    });
  });

  it('refuses a PAR whose request object carries a NUL, before any key is looked at', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const request = await new SignJWT({ nonce: 'n\u0000x' }).setProtectedHeader({ alg: 'ES256' }).sign(privateKey);
    expect(await post('/par', form(`request=${request}`), 'application/x-www-form-urlencoded')).toEqual({
      status: 400,
      body: { error: 'invalid_request', error_description: 'request.nonce must not contain a NUL character (U+0000)' },
    });
  });

  it('refuses a token request whose code carries a NUL with 400 invalid_request', async () => {
    const body = `grant_type=authorization_code&client_id=${encodeURIComponent(tpp.client.client_id)}&code=a%00b&redirect_uri=${encodeURIComponent(tpp.redirectUri)}&code_verifier=${'v'.repeat(43)}`;
    expect(await post('/token', body, 'application/x-www-form-urlencoded')).toEqual({
      status: 400,
      body: { error: 'invalid_request', error_description: 'code must not contain a NUL character (U+0000)' },
    });
  });
});

describe('the server log after hostile input', () => {
  it('holds no server error', () => {
    expect(h.logs.filter((l) => l.event === 'server_error' || (typeof l.status === 'number' && l.status >= 500))).toEqual([]);
  });
});

import fc from 'fast-check';
import type { Harness } from '../support/moat-harness.ts';
import { type RegisteredTpp, tlsFetch, useMoatWithTpp } from '../support/tpp-client.ts';
import { clientCredentialsToken } from '../support/consents.ts';

/*
 * Property-based fuzzing (fast-check) of every endpoint a client, a customer's browser or a TPP can
 * reach: whatever the body, query, path segment or header, the answer is a standard error — never a
 * 5xx, a stack trace or an internal message. Bounded in CI; TEST_MOAT_FUZZ_RUNS=2000 runs longer.
 */

const RUNS = Number(process.env.TEST_MOAT_FUZZ_RUNS ?? 30);

let h: Harness;
let tpp: RegisteredTpp;
useMoatWithTpp((started) => ({ h, tpp } = started));

let accountsToken: string;
let paymentsToken: string;
beforeAll(async () => {
  accountsToken = await clientCredentialsToken(tpp, 'accounts');
  paymentsToken = await clientCredentialsToken(tpp, 'payments');
});

function assertStandard(status: number, text: string, what: string): void {
  if (status >= 500 || /\n\s+at .+:\d+:\d+/.test(text) || /node_modules|\/src\/|TypeError|SyntaxError|ReferenceError|RangeError/.test(text)) {
    throw new Error(`${what} → ${status}: ${text.slice(0, 300)}`);
  }
  if (text.startsWith('{') && status >= 400) {
    const body = JSON.parse(text) as { error?: unknown; Code?: unknown };
    if (typeof body.error !== 'string' && typeof body.Code !== 'string') throw new Error(`${what} → ${status} without an error code: ${text.slice(0, 200)}`);
  }
}

/** Strings a parser chokes on: unicode, controls, percent and JSON syntax, long runs. */
const hostileString = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.constantFrom('%', '%%', '%ZZ', '\u0000', '{"', '[', '"', '\\', '../../etc/passwd', '<script>', 'null', '-1', '1e309', 'a'.repeat(5000)),
);
const formBody = fc.dictionary(fc.oneof(hostileString, fc.constantFrom('client_id', 'grant_type', 'code', 'scope', 'redirect_uri', 'request_uri', 'token', 'authorization_details', 'claims', 'csrf', 'username', 'password', 'decision', 'accounts')), hostileString, { maxKeys: 8 })
  .map((d) => new URLSearchParams(d).toString());
const jsonBody = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? 'null');
const rawBody = fc.oneof(formBody, jsonBody, hostileString);
const contentType = fc.constantFrom('application/x-www-form-urlencoded', 'application/json', 'application/jwt', 'text/plain', 'multipart/form-data', '');

async function send(f: ReturnType<typeof tlsFetch>, method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await f(`${h.issuer}${path}`, { method, headers: init.headers ?? {}, ...(init.body === undefined ? {} : { body: init.body }) });
  return { status: res.status, text: await res.text() };
}

const POST_ENDPOINTS = ['/par', '/token', '/introspect', '/revoke', '/register', '/interaction/x/login', '/interaction/x/consent', '/account/login', '/account/consents/x/revoke', '/sandbox/pki/ocsp'];

describe('fuzzed bodies', () => {
  it.each(POST_ENDPOINTS)('POST %s never fails with a 5xx or a stack trace', async (path) => {
    await fc.assert(fc.asyncProperty(rawBody, contentType, async (body, type) => {
      const r = await send(tpp.fetch, 'POST', path, { body, headers: type === '' ? {} : { 'content-type': type } });
      assertStandard(r.status, r.text, `${path} ${type} ${JSON.stringify(body).slice(0, 80)}`);
    }), { numRuns: RUNS });
  });

  it('the consent API answers any body with an OBIE or OAuth error', async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(jsonBody, fc.record({ Data: fc.jsonValue({ maxDepth: 3 }), Risk: fc.jsonValue({ maxDepth: 2 }) }).map((v) => JSON.stringify(v))), fc.boolean(), async (body, payments) => {
      const path = payments ? '/open-banking/v3.1/pisp/domestic-payment-consents' : '/open-banking/v3.1/aisp/account-access-consents';
      const r = await send(tpp.fetch, 'POST', path, {
        body, headers: { 'content-type': 'application/json', authorization: `Bearer ${payments ? paymentsToken : accountsToken}`, 'x-idempotency-key': crypto.randomUUID() },
      });
      assertStandard(r.status, r.text, `${path} ${body.slice(0, 80)}`);
    }), { numRuns: RUNS });
  });

  it('PAR answers any authorization_details or claims with a standard error', async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(jsonBody, hostileString), fc.oneof(jsonBody, hostileString), async (details, claims) => {
      const body = new URLSearchParams({
        client_id: tpp.client.client_id, response_type: 'code', redirect_uri: tpp.redirectUri, scope: 'openid accounts',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', authorization_details: details, claims,
      }).toString();
      const r = await send(tpp.fetch, 'POST', '/par', { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assertStandard(r.status, r.text, `PAR ${details.slice(0, 60)} / ${claims.slice(0, 60)}`);
    }), { numRuns: RUNS });
  });
});

it('refuses a NUL inside a consent (Postgres jsonb cannot store it) with 400, not 500', async () => {
  const r = await send(tpp.fetch, 'POST', '/open-banking/v3.1/pisp/domestic-payment-consents', {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${paymentsToken}`, 'x-idempotency-key': crypto.randomUUID() },
    body: JSON.stringify({ Data: { Initiation: {
      InstructionIdentification: 'I', EndToEndIdentification: 'E', InstructedAmount: { Amount: '1.00', Currency: 'GBP' },
      CreditorAccount: { SchemeName: 'UK.OBIE.SortCodeAccountNumber', Identification: '08080021325698', Name: 'Evil\u0000Corp' },
    } }, Risk: {} }),
  });
  expect(r.status).toBe(400);
  expect(JSON.parse(r.text).Message).toBe('values must not contain NUL characters');
});

describe('fuzzed paths, queries and headers', () => {
  it('GET with hostile path segments and queries never fails with a 5xx', async () => {
    const segment = hostileString.map((s) => encodeURIComponent(s).slice(0, 2000));
    await fc.assert(fc.asyncProperty(fc.constantFrom('/interaction/', '/open-banking/v3.1/aisp/account-access-consents/', '/account/consents/', '/register/', '/authorize?', '/sandbox-api/accounts?'), segment, async (prefix, part) => {
      const headers: Record<string, string> = prefix.startsWith('/open-banking') ? { authorization: `Bearer ${accountsToken}` } : {};
      const r = await send(tpp.fetch, 'GET', `${prefix}${prefix.endsWith('?') ? `x=${part}&${part}=1` : part}`, { headers });
      assertStandard(r.status, r.text, `${prefix}${part.slice(0, 60)}`);
    }), {
      numRuns: RUNS * 2,
      // Found by this fuzzer: a NUL in a consent id reached Postgres and answered 500.
      examples: [['/open-banking/v3.1/aisp/account-access-consents/', '%00'], ['/account/consents/', '%00']],
    });
  });

  it('hostile Authorization, DPoP and x-fapi-interaction-id headers never fail with a 5xx', async () => {
    const headerValue = fc.string({ minLength: 1, maxLength: 300 }).filter((s) => /^[\t\x20-\x7e]*$/.test(s));
    await fc.assert(fc.asyncProperty(headerValue, headerValue, headerValue, async (authorization, dpop, interaction) => {
      for (const path of ['/sandbox-api/accounts', '/open-banking/v3.1/aisp/account-access-consents/x', '/userinfo']) {
        const r = await send(tpp.fetch, 'GET', path, { headers: { authorization, dpop, 'x-fapi-interaction-id': interaction } });
        assertStandard(r.status, r.text, `${path} authorization=${authorization.slice(0, 40)}`);
      }
    }), { numRuns: RUNS });
  });
});

describe('without a client certificate', () => {
  it('every POST endpoint still answers a standard error', async () => {
    const anonymous = tlsFetch(tpp.creds.serverCaPem);
    try {
      await fc.assert(fc.asyncProperty(fc.constantFrom(...POST_ENDPOINTS), formBody, async (path, body) => {
        const r = await send(anonymous, 'POST', path, { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        assertStandard(r.status, r.text, `${path} (no certificate)`);
      }), { numRuns: RUNS });
    } finally {
      await anonymous.close();
    }
  });
});

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

/**
 * Text no store can hold — Postgres refuses NUL, and an unpaired UTF-16 surrogate in jsonb — which
 * every edge refuses as the client's error: a NUL or a lone surrogate somewhere in a string.
 */
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const unstorableString = fc
  .tuple(fc.string({ maxLength: 10 }), fc.oneof(fc.constant('\u0000'), loneSurrogate), fc.string({ maxLength: 10 }))
  .map(([before, bad, after]) => `${before}${bad}${after}`);
/** Percent-encoded bytes that are not UTF-8: overlong forms (of NUL, of '/'), encoded surrogates, stray and impossible bytes. */
const notUtf8Escape = fc.constantFrom('%C0%80', '%C0%AF', '%E0%80%80', '%F0%80%80%80', '%ED%A0%80', '%ED%BF%BF', '%80', '%FF', '%F8%88%80%80%80');
/** The same bytes raw, for a body that is not UTF-8 at all. */
const notUtf8Bytes = notUtf8Escape.map((percentEscape) => Uint8Array.from(percentEscape.split('%').slice(1), (hex) => parseInt(hex, 16)));

/** Strings a parser chokes on: unicode, controls, percent and JSON syntax, long runs, text no store can hold. */
const hostileString = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  unstorableString,
  fc.constantFrom('%', '%%', '%ZZ', '\u0000', '{"', '[', '"', '\\', '../../etc/passwd', '<script>', 'null', '-1', '1e309', 'a'.repeat(5000)),
);
const formName = fc.oneof(
  hostileString,
  fc.constantFrom(
    'client_id',
    'grant_type',
    'code',
    'scope',
    'redirect_uri',
    'request_uri',
    'token',
    'nonce',
    'state',
    'authorization_details',
    'claims',
    'csrf',
    'username',
    'password',
    'decision',
    'accounts',
  ),
);
/** A form value as sent: URL-encoded (a lone surrogate becomes U+FFFD there), or with bytes that are not UTF-8. */
const encoded = (text: string) => new URLSearchParams({ v: text }).toString().slice(2);
const formValue = fc.oneof(
  hostileString.map(encoded),
  fc.tuple(fc.string({ maxLength: 10 }), notUtf8Escape).map(([text, percentEscape]) => `${encoded(text)}${percentEscape}`),
);
const formBody = fc.array(fc.tuple(formName, formValue), { maxLength: 8 }).map((pairs) => pairs.map(([name, value]) => `${encoded(name)}=${value}`).join('&'));
const jsonBody = fc
  .oneof(
    fc.jsonValue({ maxDepth: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 20 }), unstorableString), fc.oneof(fc.jsonValue({ maxDepth: 2 }), unstorableString), { maxKeys: 6 }),
  )
  .map((v) => JSON.stringify(v) ?? 'null');
/** A JSON body with raw bytes that are not UTF-8 inside one of its strings. */
const notUtf8Json = fc.tuple(fc.string({ maxLength: 20 }), notUtf8Bytes).map(([text, bytes]) => {
  const [open, close] = JSON.stringify({ v: `${text}XX` }).split('XX') as [string, string];
  return Buffer.concat([Buffer.from(open), bytes, Buffer.from(close)]);
});
const rawBody = fc.oneof(formBody, jsonBody, hostileString, notUtf8Json);
const contentType = fc.constantFrom('application/x-www-form-urlencoded', 'application/json', 'application/jwt', 'text/plain', 'multipart/form-data', '');

async function send(f: ReturnType<typeof tlsFetch>, method: string, path: string, init: { body?: string | Uint8Array; headers?: Record<string, string> } = {}) {
  const res = await f(`${h.issuer}${path}`, { method, headers: init.headers ?? {}, ...(init.body === undefined ? {} : { body: init.body }) });
  return { status: res.status, text: await res.text() };
}

const POST_ENDPOINTS = [
  '/par',
  '/token',
  '/introspect',
  '/revoke',
  '/register',
  '/interaction/x/login',
  '/interaction/x/consent',
  '/account/login',
  '/account/consents/x/revoke',
  '/sandbox/pki/ocsp',
];

describe('fuzzed bodies', () => {
  it.each(POST_ENDPOINTS)('POST %s never fails with a 5xx or a stack trace', async (path) => {
    await fc.assert(
      fc.asyncProperty(rawBody, contentType, async (body, type) => {
        const r = await send(tpp.fetch, 'POST', path, { body, headers: type === '' ? {} : { 'content-type': type } });
        assertStandard(
          r.status,
          r.text,
          `${path} ${type} ${(typeof body === 'string' ? JSON.stringify(body) : Buffer.from(body).toString('hex')).slice(0, 80)}`,
        );
      }),
      { numRuns: RUNS },
    );
  });

  it('the consent API answers any body with an OBIE or OAuth error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          jsonBody,
          fc.record({ Data: fc.jsonValue({ maxDepth: 3 }), Risk: fc.jsonValue({ maxDepth: 2 }) }).map((v) => JSON.stringify(v)),
        ),
        fc.boolean(),
        async (body, payments) => {
          const path = payments ? '/open-banking/v3.1/pisp/domestic-payment-consents' : '/open-banking/v3.1/aisp/account-access-consents';
          const r = await send(tpp.fetch, 'POST', path, {
            body,
            headers: {
              'content-type': 'application/json',
              authorization: `Bearer ${payments ? paymentsToken : accountsToken}`,
              'x-idempotency-key': crypto.randomUUID(),
            },
          });
          assertStandard(r.status, r.text, `${path} ${body.slice(0, 80)}`);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('PAR answers any authorization_details or claims with a standard error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(jsonBody, hostileString), fc.oneof(jsonBody, hostileString), async (details, claims) => {
        const body = new URLSearchParams({
          client_id: tpp.client.client_id,
          response_type: 'code',
          redirect_uri: tpp.redirectUri,
          scope: 'openid accounts',
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
          authorization_details: details,
          claims,
        }).toString();
        const r = await send(tpp.fetch, 'POST', '/par', { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        assertStandard(r.status, r.text, `PAR ${details.slice(0, 60)} / ${claims.slice(0, 60)}`);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('text no store can hold is refused at the edge, naming where it is', () => {
  it('in registration metadata: 400 invalid_client_metadata (RFC 7591 §3.2.2)', async () => {
    const field = fc.constantFrom('client_name', 'logo_uri', 'client_uri', 'policy_uri', 'tos_uri', 'software_version', 'jwks_uri', 'x_extension');
    await fc.assert(
      fc.asyncProperty(field, unstorableString, fc.boolean(), async (name, value, inArray) => {
        const body = JSON.stringify({ ...tpp.creds.registration, [name]: inArray ? ['ok', value] : value });
        const r = await send(tpp.fetch, 'POST', '/register', { body, headers: { 'content-type': 'application/json' } });
        const answer = JSON.parse(r.text) as { error?: string; error_description?: string };
        if (r.status !== 400 || answer.error !== 'invalid_client_metadata' || !answer.error_description?.startsWith(inArray ? `${name}[1] ` : `${name} `)) {
          throw new Error(`${name}=${JSON.stringify(value)} → ${r.status} ${r.text.slice(0, 200)}`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('in PAR parameters, as a NUL or as bytes that are not UTF-8: 400 invalid_request (RFC 9126 §2.3)', async () => {
    const nul = fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 })).map(([a, b]) => encoded(`${a}\u0000${b}`));
    const value = fc.oneof(
      nul,
      fc.tuple(fc.string({ maxLength: 10 }), notUtf8Escape).map(([text, percentEscape]) => `${encoded(text)}${percentEscape}`),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('nonce', 'state', 'acr_values', 'login_hint', 'ui_locales', 'x_extension'), value, async (name, sent) => {
        const body = `${new URLSearchParams({
          client_id: tpp.client.client_id,
          response_type: 'code',
          redirect_uri: tpp.redirectUri,
          scope: 'openid accounts',
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
        })}&${name}=${sent}`;
        const r = await send(tpp.fetch, 'POST', '/par', { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        const answer = JSON.parse(r.text) as { error?: string; error_description?: string };
        if (r.status !== 400 || answer.error !== 'invalid_request' || !answer.error_description?.startsWith(`${name} `)) {
          throw new Error(`${name}=${sent} → ${r.status} ${r.text.slice(0, 200)}`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('in a consent API body: 400 with the OBIE error structure', async () => {
    await fc.assert(
      fc.asyncProperty(unstorableString, async (value) => {
        const r = await send(tpp.fetch, 'POST', '/open-banking/v3.1/aisp/account-access-consents', {
          headers: { 'content-type': 'application/json', authorization: `Bearer ${accountsToken}` },
          body: JSON.stringify({ Data: { Permissions: ['ReadAccountsBasic'], ExpirationDateTime: value }, Risk: {} }),
        });
        const answer = JSON.parse(r.text) as { Errors?: { ErrorCode?: string; Message?: string }[] };
        if (
          r.status !== 400 ||
          answer.Errors?.[0]?.ErrorCode !== 'UK.OBIE.Field.Invalid' ||
          !answer.Errors[0].Message?.startsWith('Data.ExpirationDateTime ')
        ) {
          throw new Error(`${JSON.stringify(value)} → ${r.status} ${r.text.slice(0, 200)}`);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

it('refuses a NUL inside a consent (Postgres jsonb cannot store it) with 400, not 500', async () => {
  const r = await send(tpp.fetch, 'POST', '/open-banking/v3.1/pisp/domestic-payment-consents', {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${paymentsToken}`, 'x-idempotency-key': crypto.randomUUID() },
    body: JSON.stringify({
      Data: {
        Initiation: {
          InstructionIdentification: 'I',
          EndToEndIdentification: 'E',
          InstructedAmount: { Amount: '1.00', Currency: 'GBP' },
          CreditorAccount: { SchemeName: 'UK.OBIE.SortCodeAccountNumber', Identification: '08080021325698', Name: 'Evil\u0000Corp' },
        },
      },
      Risk: {},
    }),
  });
  expect(r.status).toBe(400);
  expect(JSON.parse(r.text).Message).toBe('Data.Initiation.CreditorAccount.Name must not contain a NUL character (U+0000)');
});

describe('fuzzed paths, queries and headers', () => {
  it('GET with hostile path segments and queries never fails with a 5xx', async () => {
    // A lone surrogate cannot be percent-encoded (it becomes U+FFFD); bytes that are not UTF-8 can be.
    const segment = fc.oneof(
      hostileString.map((s) => encodeURIComponent(s.toWellFormed()).slice(0, 2000)),
      fc.tuple(fc.string({ maxLength: 10 }), notUtf8Escape).map(([text, percentEscape]) => `${encodeURIComponent(text)}${percentEscape}`),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          '/interaction/',
          '/open-banking/v3.1/aisp/account-access-consents/',
          '/account/consents/',
          '/register/',
          '/authorize?',
          '/sandbox-api/accounts?',
        ),
        segment,
        async (prefix, part) => {
          const headers: Record<string, string> = prefix.startsWith('/open-banking') ? { authorization: `Bearer ${accountsToken}` } : {};
          const r = await send(tpp.fetch, 'GET', `${prefix}${prefix.endsWith('?') ? `x=${part}&${part}=1` : part}`, { headers });
          assertStandard(r.status, r.text, `${prefix}${part.slice(0, 60)}`);
        },
      ),
      {
        numRuns: RUNS * 2,
        // Found by this fuzzer: a NUL in a consent id reached Postgres and answered 500.
        examples: [
          ['/open-banking/v3.1/aisp/account-access-consents/', '%00'],
          ['/account/consents/', '%00'],
        ],
      },
    );
  });

  it('hostile Authorization, DPoP and x-fapi-interaction-id headers never fail with a 5xx', async () => {
    const headerValue = fc.string({ minLength: 1, maxLength: 300 }).filter((s) => /^[\t\x20-\x7e]*$/.test(s));
    await fc.assert(
      fc.asyncProperty(headerValue, headerValue, headerValue, async (authorization, dpop, interaction) => {
        for (const path of ['/sandbox-api/accounts', '/open-banking/v3.1/aisp/account-access-consents/x', '/userinfo']) {
          const r = await send(tpp.fetch, 'GET', path, { headers: { authorization, dpop, 'x-fapi-interaction-id': interaction } });
          assertStandard(r.status, r.text, `${path} authorization=${authorization.slice(0, 40)}`);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('without a client certificate', () => {
  it('every POST endpoint still answers a standard error', async () => {
    const anonymous = tlsFetch(tpp.creds.serverCaPem);
    try {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...POST_ENDPOINTS), formBody, async (path, body) => {
          const r = await send(anonymous, 'POST', path, { body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
          assertStandard(r.status, r.text, `${path} (no certificate)`);
        }),
        { numRuns: RUNS },
      );
    } finally {
      await anonymous.close();
    }
  });
});

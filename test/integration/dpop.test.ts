import { createHash, randomUUID, webcrypto } from 'node:crypto';
import { request } from 'node:https';
import { exportJWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { authorize, onboardTpp, type RegisteredTpp } from '../support/tpp-client.ts';

/*
 * DPoP (RFC 9449) as the alternative sender constraint: the authorization code is bound to the key
 * at PAR (dpop_jkt, FAPI 2.0 SP §5.3.2.1), the access token to the same key (cnf.jkt).
 */

let h: Harness;
let tpp: RegisteredTpp;

type KeyPair = { privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey };

/** A DPoP proof made by hand (RFC 9449 §4.2), so a test can choose every claim. */
async function handMadeProof(
  keys: KeyPair,
  claims: { htm: string; htu: string; accessToken?: string; jti?: string; iat?: number; nonce?: string },
  signer: KeyPair = keys,
): Promise<string> {
  return new SignJWT({
    htm: claims.htm,
    htu: claims.htu,
    jti: claims.jti ?? randomUUID(),
    ...(claims.accessToken === undefined ? {} : { ath: createHash('sha256').update(claims.accessToken).digest('base64url') }),
    ...(claims.nonce === undefined ? {} : { nonce: claims.nonce }),
  })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: await exportJWK(keys.publicKey) })
    .setIssuedAt(claims.iat ?? Math.floor(Date.now() / 1000))
    .sign(signer.privateKey);
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function answer(res: Response): Promise<Answer> {
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

/** A call to one of Moat's own APIs with a DPoP-bound token and the given proof. */
async function callWithProof(path: string, accessToken: string, proof: string, init: { method?: string; body?: string } = {}): Promise<Answer> {
  return answer(
    await tpp.fetch(`${h.issuer}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `DPoP ${accessToken}`, dpop: proof, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(init.body === undefined ? {} : { body: init.body }),
    }),
  );
}

/** Sends the same request several times at once, over connections opened beforehand. */
async function atOnce<T>(times: number, send: () => Promise<T>): Promise<T[]> {
  await Promise.all(Array.from({ length: times }, async () => (await tpp.fetch(`${h.issuer}/jwks`)).arrayBuffer()));
  return Promise.all(Array.from({ length: times }, send));
}

async function dpopBoundToken(keys: KeyPair): Promise<string> {
  const { params, codeVerifier } = await authorize(h, tpp, { dpop: oauth.DPoP(tpp.client, keys) });
  const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
    [oauth.customFetch]: tpp.fetch,
    DPoP: oauth.DPoP(tpp.client, keys),
  });
  return (await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, res)).access_token;
}

async function dpopBoundClientCredentials(keys: KeyPair, scope: string): Promise<string> {
  const res = await oauth.clientCredentialsGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), new URLSearchParams({ scope }), {
    [oauth.customFetch]: tpp.fetch,
    DPoP: oauth.DPoP(tpp.client, keys),
  });
  return (await oauth.processClientCredentialsResponse(tpp.as, tpp.client, res)).access_token;
}

const REPLAYED = expect.stringMatching(/^DPoP proof replayed: its jti was already used/);

beforeAll(async () => {
  h = await startMoat();
  tpp = await onboardTpp(h, { registration: { dpop_bound_access_tokens: true } });
});

afterAll(async () => {
  await tpp?.close();
  await h?.close();
});

async function dpopKey() {
  return webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

async function codeFor(keyPair: webcrypto.CryptoKeyPair) {
  return authorize(h, tpp, { dpop: oauth.DPoP(tpp.client, keyPair) });
}

describe('a DPoP-bound client', () => {
  let keyPair: webcrypto.CryptoKeyPair;
  let accessToken: string;

  beforeAll(async () => {
    keyPair = await dpopKey();
    const { params, codeVerifier } = await codeFor(keyPair);
    const dpop = oauth.DPoP(tpp.client, keyPair);
    const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
      [oauth.customFetch]: tpp.fetch,
      DPoP: dpop,
    });
    const tokens = await oauth.processAuthorizationCodeResponse(tpp.as, tpp.client, res);
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    accessToken = tokens.access_token;
  });

  it('gets an access token that introspects with cnf.jkt and no certificate binding', async () => {
    const introspection = await oauth.processIntrospectionResponse(
      tpp.as,
      tpp.client,
      await oauth.introspectionRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), accessToken, { [oauth.customFetch]: tpp.fetch }),
    );
    expect(introspection.active).toBe(true);
    expect(introspection.cnf).toEqual({ jkt: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
  });

  it('calls the sandbox API with a fresh proof of the key', async () => {
    const res = await oauth.protectedResourceRequest(accessToken, 'GET', new URL(`${h.issuer}/sandbox-api/accounts`), undefined, undefined, {
      [oauth.customFetch]: tpp.fetch,
      DPoP: oauth.DPoP(tpp.client, keyPair),
    });
    expect(res.status).toBe(200);
  });

  it('is refused by the API without a proof', async () => {
    const res = await tpp.fetch(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: 'invalid_token',
      error_description: 'this access token is DPoP-bound; use the DPoP authorization scheme (RFC 9449 §7.1)',
    });
  });

  it('is refused by the API with a proof from another key', async () => {
    const refused = await oauth
      .protectedResourceRequest(accessToken, 'GET', new URL(`${h.issuer}/sandbox-api/accounts`), undefined, undefined, {
        [oauth.customFetch]: tpp.fetch,
        DPoP: oauth.DPoP(tpp.client, await dpopKey()),
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(refused).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const challenge = (refused as oauth.WWWAuthenticateChallengeError).cause[0]!;
    expect(challenge.scheme).toBe('dpop');
    expect(challenge.parameters).toEqual(
      expect.objectContaining({ error: 'invalid_dpop_proof', error_description: 'DPoP proof rejected: the proof key is not the key the token is bound to' }),
    );
    expect((refused as oauth.WWWAuthenticateChallengeError).response.status).toBe(401);
  });

  it('cannot redeem a code bound at PAR with a proof from another key', async () => {
    const { params, codeVerifier } = await codeFor(keyPair);
    const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
      [oauth.customFetch]: tpp.fetch,
      DPoP: oauth.DPoP(tpp.client, await dpopKey()),
    });
    expect(res.status).toBe(400);
    // RFC 9449 §10: the code is bound to the key named at PAR (dpop_jkt); the answer says so.
    expect(await res.json()).toEqual({
      error: 'invalid_grant',
      error_description: expect.stringMatching(/^the DPoP proof is signed with another key than the one this authorization code is bound to/),
    });
  });

  it('cannot get a token without any DPoP proof', async () => {
    const { params, codeVerifier } = await codeFor(keyPair);
    const res = await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
      [oauth.customFetch]: tpp.fetch,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_grant', error_description: expect.stringMatching(/send a DPoP proof/) });
  });
});

describe("DPoP at Moat's own APIs (RFC 9449 §7.1, §9, §11.1)", () => {
  let keys: KeyPair;
  let accessToken: string;
  const accounts = () => `${h.issuer}/sandbox-api/accounts`;

  beforeAll(async () => {
    keys = await dpopKey();
    accessToken = await dpopBoundToken(keys);
  });

  it('accepts a proof once: the same proof sent three times is refused as a replay after the first (RFC 9449 §11.1)', async () => {
    const proof = await handMadeProof(keys, { htm: 'GET', htu: accounts(), accessToken });
    const answers = [];
    for (let i = 0; i < 3; i += 1) answers.push(await callWithProof('/sandbox-api/accounts', accessToken, proof));
    expect(answers.map((a) => a.status)).toEqual([200, 401, 401]);
    for (const refused of answers.slice(1)) {
      expect(refused.body).toEqual({ error: 'invalid_dpop_proof', error_description: REPLAYED });
      expect(refused.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/);
    }
  });

  it('accepts a proof once even when it is sent five times at once: the jti is claimed atomically', async () => {
    const proof = await handMadeProof(keys, { htm: 'GET', htu: accounts(), accessToken });
    const answers = await atOnce(5, () => callWithProof('/sandbox-api/accounts', accessToken, proof));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 401, 401, 401, 401]);
    for (const refused of answers.filter((a) => a.status === 401)) expect(refused.body).toEqual({ error: 'invalid_dpop_proof', error_description: REPLAYED });
  });

  it('checks htu against the issuer, not the Host header: a proof for another bank is refused even when Host names it (RFC 9449 §4.3)', async () => {
    const foreign = 'https://api.other-bank.example/sandbox-api/accounts';
    const proof = await handMadeProof(keys, { htm: 'GET', htu: foreign, accessToken });
    const res = await new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: h.port,
          servername: 'localhost',
          path: '/sandbox-api/accounts',
          method: 'GET',
          ca: tpp.creds.serverCaPem,
          cert: tpp.creds.certPem,
          key: tpp.creds.keyPem,
          headers: { host: 'api.other-bank.example', authorization: `DPoP ${accessToken}`, dpop: proof },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (c: Buffer) => chunks.push(c));
          response.on('end', () =>
            resolve({ status: response.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(res.status).toBe(401);
    expect(res.body).toEqual({
      error: 'invalid_dpop_proof',
      error_description: `DPoP proof rejected: htu must be ${accounts()} (RFC 9449 §4.3), not ${foreign}`,
    });
  });

  it('refuses a proof whose iat is far in the past or the future, and offers a DPoP-Nonce instead (RFC 9449 §9, §11.1)', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const iat of [now - 3600, now + 3600]) {
      const refused = await callWithProof('/sandbox-api/accounts', accessToken, await handMadeProof(keys, { htm: 'GET', htu: accounts(), accessToken, iat }));
      expect(refused.status).toBe(401);
      expect(refused.body).toEqual({
        error: 'use_dpop_nonce',
        error_description: expect.stringMatching(/^DPoP proof iat is -?\d+ s (before|after) the server's time/),
      });
      expect(refused.headers.get('dpop-nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
  });

  it('accepts a proof with the nonce it offered, from a client whose clock is two minutes behind (RFC 9449 §9)', async () => {
    const iat = Math.floor(Date.now() / 1000) - 120;
    const first = await callWithProof('/sandbox-api/accounts', accessToken, await handMadeProof(keys, { htm: 'GET', htu: accounts(), accessToken, iat }));
    expect(first.body.error).toBe('use_dpop_nonce');
    const nonce = first.headers.get('dpop-nonce')!;
    const retried = await callWithProof(
      '/sandbox-api/accounts',
      accessToken,
      await handMadeProof(keys, { htm: 'GET', htu: accounts(), accessToken, iat, nonce }),
    );
    expect(retried.status).toBe(200);
  });

  it('refuses a nonce it did not issue with use_dpop_nonce and a fresh DPoP-Nonce', async () => {
    const refused = await callWithProof(
      '/sandbox-api/accounts',
      accessToken,
      await handMadeProof(keys, { htm: 'GET', htu: accounts(), accessToken, nonce: 'made-up' }),
    );
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({ error: 'use_dpop_nonce', error_description: expect.stringContaining('nonce') });
    expect(refused.headers.get('www-authenticate')).toMatch(/^DPoP error="use_dpop_nonce"/);
    expect(refused.headers.get('dpop-nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('takes the nonce the token endpoint gave: one DPoP-Nonce serves the origin, as clients cache it per origin', async () => {
    const handle = oauth.DPoP(tpp.client, keys);
    const { params, codeVerifier } = await authorize(h, tpp, { dpop: handle });
    const token = await oauth.processAuthorizationCodeResponse(
      tpp.as,
      tpp.client,
      await oauth.authorizationCodeGrantRequest(tpp.as, tpp.client, oauth.TlsClientAuth(), params, tpp.redirectUri, codeVerifier, {
        [oauth.customFetch]: tpp.fetch,
        DPoP: handle,
      }),
    );
    // oauth4webapi now holds the token endpoint's DPoP-Nonce for this origin and puts it in the proof.
    const res = await oauth.protectedResourceRequest(token.access_token, 'GET', new URL(accounts()), undefined, undefined, {
      [oauth.customFetch]: tpp.fetch,
      DPoP: handle,
    });
    expect(res.status).toBe(200);
  });

  it('refuses a replayed proof at the consent API too', async () => {
    const ccKeys = await dpopKey();
    const ccToken = await dpopBoundClientCredentials(ccKeys, 'accounts');
    const url = `${h.issuer}/open-banking/v3.1/aisp/account-access-consents`;
    const body = JSON.stringify({ Data: { Permissions: ['ReadAccountsBasic'] }, Risk: {} });
    const proof = await handMadeProof(ccKeys, { htm: 'POST', htu: url, accessToken: ccToken });
    const first = await callWithProof('/open-banking/v3.1/aisp/account-access-consents', ccToken, proof, { method: 'POST', body });
    const again = await callWithProof('/open-banking/v3.1/aisp/account-access-consents', ccToken, proof, { method: 'POST', body });
    expect([first.status, again.status]).toEqual([201, 401]);
    expect(again.body).toEqual({ error: 'invalid_dpop_proof', error_description: REPLAYED });
  });
});

describe('DPoP proofs refused at the token endpoint say why (RFC 9449 §5, §11.1)', () => {
  const tokenRequest = (proof: string) =>
    tpp
      .fetch(`${h.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: tpp.client.client_id, scope: 'accounts' }).toString(),
      })
      .then(answer);

  it('answers a replayed proof with invalid_dpop_proof, not invalid_grant', async () => {
    const proof = await handMadeProof(await dpopKey(), { htm: 'POST', htu: `${h.issuer}/token` });
    const first = await tokenRequest(proof);
    const again = await tokenRequest(proof);
    expect(first.status).toBe(200);
    expect(again.status).toBe(400);
    expect(again.body).toEqual({ error: 'invalid_dpop_proof', error_description: REPLAYED });
  });

  it('keeps the authorization code when its request is refused for a replayed proof: the retry with a fresh proof gets the tokens', async () => {
    const keys = await dpopKey();
    const { params, codeVerifier } = await codeFor(keys);
    const redeem = (proof: string) =>
      tpp
        .fetch(`${h.issuer}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            client_id: tpp.client.client_id,
            code: params.get('code')!,
            redirect_uri: tpp.redirectUri,
            code_verifier: codeVerifier,
          }).toString(),
        })
        .then(answer);
    // A proof of the code's key, already spent on another request.
    const spent = await handMadeProof(keys, { htm: 'POST', htu: `${h.issuer}/token` });
    expect((await tokenRequest(spent)).status).toBe(200);

    const refused = await redeem(spent);
    expect(refused).toEqual(expect.objectContaining({ status: 400, body: { error: 'invalid_dpop_proof', error_description: REPLAYED } }));
    const retried = await redeem(await handMadeProof(keys, { htm: 'POST', htu: `${h.issuer}/token` }));
    expect(retried.status).toBe(200);
    expect(retried.body.token_type).toBe('DPoP');
    // Redeemed now: the code is single-use again.
    expect((await redeem(await handMadeProof(keys, { htm: 'POST', htu: `${h.issuer}/token` }))).status).toBe(400);
  });

  it('accepts one proof once, even sent five times at once: the losers of the jti claim are told it was replayed', async () => {
    const proof = await handMadeProof(await dpopKey(), { htm: 'POST', htu: `${h.issuer}/token` });
    const results = await atOnce(5, () => tokenRequest(proof));
    expect(results.map((r) => r.status).sort()).toEqual([200, 400, 400, 400, 400]);
    expect(results.find((r) => r.status === 200)!.body.token_type).toBe('DPoP');
    for (const refused of results.filter((r) => r.status === 400)) expect(refused.body).toEqual({ error: 'invalid_dpop_proof', error_description: REPLAYED });
  });

  it('names a bad signature', async () => {
    const refused = await tokenRequest(await handMadeProof(await dpopKey(), { htm: 'POST', htu: `${h.issuer}/token` }, await dpopKey()));
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({
      error: 'invalid_dpop_proof',
      error_description: 'DPoP proof rejected: the signature does not verify with the jwk in its header',
    });
  });

  it('names the htu it expected', async () => {
    const refused = await tokenRequest(await handMadeProof(await dpopKey(), { htm: 'POST', htu: 'https://as.other-bank.example/token' }));
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({
      error: 'invalid_dpop_proof',
      error_description: `DPoP proof rejected: htu must be ${h.issuer}/token (RFC 9449 §4.3), not https://as.other-bank.example/token`,
    });
  });

  it('answers a proof an hour old with use_dpop_nonce and a DPoP-Nonce (RFC 9449 §8)', async () => {
    const refused = await tokenRequest(
      await handMadeProof(await dpopKey(), { htm: 'POST', htu: `${h.issuer}/token`, iat: Math.floor(Date.now() / 1000) - 3600 }),
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('use_dpop_nonce');
    expect(refused.headers.get('dpop-nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('answers a replayed proof at the pushed authorization endpoint with invalid_dpop_proof', async () => {
    const proof = await handMadeProof(await dpopKey(), { htm: 'POST', htu: `${h.issuer}/par` });
    const push = () =>
      tpp
        .fetch(`${h.issuer}/par`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
          body: new URLSearchParams({
            client_id: tpp.client.client_id,
            response_type: 'code',
            scope: 'openid accounts',
            redirect_uri: tpp.redirectUri,
            code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
            code_challenge_method: 'S256',
          }).toString(),
        })
        .then(answer);
    expect((await push()).status).toBe(201);
    expect(await push()).toEqual(expect.objectContaining({ status: 400, body: { error: 'invalid_dpop_proof', error_description: REPLAYED } }));
  });
});

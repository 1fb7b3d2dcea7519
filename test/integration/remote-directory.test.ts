import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { issueTpp, registerTpp } from '../support/tpp-client.ts';

/*
 * A directory whose keys Moat fetches from its jwks_uri over TLS: cached between registrations,
 * fetched again when an SSA names a kid Moat has not seen (the directory rotated its keys).
 */

const ISSUER = 'remote-directory';
let h: Harness;
let server: Server;
let published: (JWK & { kid: string })[] = [];
let fetches = 0;

async function directoryKey() {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { privateKey, jwk: { ...jwk, kid, alg: 'ES256', use: 'sig' } };
}

beforeAll(async () => {
  const pki = await ensureSandboxMaterial(mkdtempSync(join(tmpdir(), 'moat-remote-dir-')));
  server = createServer({ cert: readFileSync(pki.serverCertFile), key: readFileSync(pki.serverKeyFile) }, (_req, res) => {
    fetches += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  h = await startMoat({
    config: {
      directories: [
        {
          name: 'Remote directory',
          issuer: ISSUER,
          jwksUri: `https://localhost:${(server.address() as AddressInfo).port}/jwks`,
          jwksCaFile: pki.serverCaCertFile,
          jwksRefetchCooldownSeconds: 0,
        },
      ],
    },
  });
});
afterAll(async () => {
  await h.close();
  server.close();
});

/** Sandbox credentials re-signed by the remote directory; `obShaped`: as the OB Directory signs them (iss, iat, jti, no exp). */
async function credsSignedBy(key: Awaited<ReturnType<typeof directoryKey>>, options: { obShaped?: boolean; iat?: number } = {}) {
  const creds = await issueTpp(h);
  const sandboxSsa = JSON.parse(Buffer.from(creds.ssa.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
  const { iss: _iss, iat: _iat, exp: _exp, jti: _jti, ...claims } = sandboxSsa;
  const signed = new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: key.jwk.kid }).setIssuer(ISSUER).setIssuedAt(options.iat).setJti(randomUUID());
  const ssa = await (options.obShaped === true ? signed : signed.setExpirationTime('1h')).sign(key.privateKey);
  return { ...creds, ssa, registration: { ...creds.registration, software_statement: ssa } };
}

it("verifies SSAs with keys fetched from the directory's jwks_uri, cached between registrations", async () => {
  const first = await directoryKey();
  published = [first.jwk];
  expect((await registerTpp(h, await credsSignedBy(first))).status).toBe(201);
  expect((await registerTpp(h, await credsSignedBy(first))).status).toBe(201);
  expect(fetches).toBe(1);
});

it('fetches the keys again when an SSA names an unknown kid, after the directory rotated', async () => {
  const rotated = await directoryKey();
  published = [rotated.jwk];
  const before = fetches;
  const res = await registerTpp(h, await credsSignedBy(rotated));
  expect(res.body.error_description).toBeUndefined();
  expect(res.status).toBe(201);
  expect(fetches).toBe(before + 1);
  // A kid the directory never published stays refused, with a clear reason.
  const stranger = await directoryKey();
  const refused = await registerTpp(h, await credsSignedBy(stranger));
  expect(refused).toEqual({
    status: 400,
    body: { error: 'invalid_software_statement', error_description: 'software_statement is signed with a key Remote directory does not publish' },
  });
});

describe('a directory configured with the uk-ob defaults, as the real OB Directory (issue 14)', () => {
  it('registers a statement shaped as the OB Directory signs them: iss, iat and jti, no exp', async () => {
    const key = await directoryKey();
    published = [key.jwk];
    const res = await registerTpp(h, await credsSignedBy(key, { obShaped: true }));
    expect(res.body.error_description).toBeUndefined();
    expect(res.status).toBe(201);
  });

  it('refuses such a statement once it is more than a day old, saying how old it may be', async () => {
    const key = await directoryKey();
    published = [key.jwk];
    const stale = await credsSignedBy(key, { obShaped: true, iat: Math.floor(Date.now() / 1000) - 86_400 - 60 });
    expect(await registerTpp(h, stale)).toEqual({
      status: 400,
      body: {
        error: 'invalid_software_statement',
        error_description: 'software_statement is older than the 86400 s Remote directory allows (iat); fetch a fresh one',
      },
    });
  });
});

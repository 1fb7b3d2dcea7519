import { SignJWT, generateKeyPair, importJWK } from 'jose';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { createCa } from '../../src/sandbox/certificate-issuing.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { issueTpp, registerTpp, tlsFetch, type TppCredentials } from '../support/tpp-client.ts';

/*
 * Dynamic client registration (RFC 7591) with a software statement: every refusal is an RFC 7591
 * §3.2.2 error precise enough for a TPP to fix its request.
 */

let h: Harness;
let tpp: TppCredentials;

beforeAll(async () => {
  h = await startMoat();
  tpp = await issueTpp(h, { roles: ['AISP'] });
});

afterAll(async () => {
  await h?.close();
});

async function register(body: Record<string, unknown>, cert: { certPem: string; keyPem: string } | null = tpp) {
  const f = tlsFetch(tpp.serverCaPem, cert ?? undefined);
  try {
    const res = await f(`${h.issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } finally {
    await f.close();
  }
}

/** An SSA with the sandbox directory's own key, for claims the CLI would never write. */
async function sandboxSsa(claims: Record<string, unknown>): Promise<string> {
  const material = await ensureSandboxMaterial(h.config.dataDir);
  const key = await importJWK(material.directory.privateJwk, 'ES256');
  const now = Math.floor(Date.now() / 1000);
  // A claim given as undefined is left out of the statement.
  return new SignJWT({
    software_id: tpp.summary.software_id,
    org_id: tpp.summary.org_id,
    org_status: 'Active',
    software_roles: ['AISP'],
    software_redirect_uris: ['https://localhost:3000/callback'],
    software_client_name: 'x',
    iat: now,
    exp: now + 3600,
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', kid: material.directory.privateJwk.kid })
    .setIssuer('moat-sandbox-directory')
    .sign(key);
}

describe('registration with a software statement (RFC 7591)', () => {
  it('registers a client from the SSA: name, roles, organisation and the TPP keys come from the directory', async () => {
    const { status, body } = await registerTpp(h, tpp);
    expect(status).toBe(201);
    expect(body).toEqual(
      expect.objectContaining({
        client_name: 'Test Fintech',
        software_id: tpp.summary.software_id,
        org_id: tpp.summary.org_id,
        software_roles: ['AISP'],
        scope: 'openid accounts',
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_certificate_bound_access_tokens: true,
        jwks: { keys: [expect.objectContaining({ kid: tpp.signingJwks.keys[0]!.kid })] },
      }),
    );
    expect(body).not.toHaveProperty('client_secret');
    expect(JSON.stringify(body.jwks)).not.toContain('"d"');
  });

  it('issues a UUID client_id, which never starts with "-" (an operator passes it to the moat CLI)', async () => {
    const { body } = await registerTpp(h, await issueTpp(h, { roles: ['AISP'] }));
    expect(body.client_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('records the organisation, its transport certificate and the client in the TPP registry', async () => {
    const other = await issueTpp(h, { roles: ['AISP'] });
    const { body } = await registerTpp(h, other);
    const { rows } = await h.moat.storage.sql.query<Record<string, string>>(
      `SELECT o.org_id, o.directory_issuer, c.subject_dn, c.thumbprint, t.software_id
         FROM client_tpp t JOIN tpp_organisation o USING (org_id) JOIN tpp_certificate c ON c.thumbprint = t.transport_cert_thumbprint
        WHERE t.client_id = $1`,
      [String(body.client_id)],
    );
    expect(rows).toEqual([
      {
        org_id: other.summary.org_id,
        directory_issuer: 'moat-sandbox-directory',
        subject_dn: other.summary.tls_client_auth_subject_dn,
        thumbprint: other.summary['x5t#S256'],
        software_id: other.summary.software_id,
      },
    ]);
  });

  it('accepts the subject DN written differently but naming the same subject (RFC 4514)', async () => {
    const dn = String(tpp.registration.tls_client_auth_subject_dn).toLowerCase().replace(/, /g, ',').replace(/cn=/, 'CN = ');
    expect((await register({ ...tpp.registration, tls_client_auth_subject_dn: dn })).status).toBe(201);
  });

  it.each(['/register/', '/REGISTER', '/Register', '/register//', '/register?x=1'])(
    'applies the software-statement policy on every spelling of the endpoint (%s)',
    async (path) => {
      const f = tlsFetch(tpp.serverCaPem, tpp);
      try {
        const forged = await f(`${h.issuer}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ redirect_uris: ['https://evil.example/cb'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [] } }),
        });
        expect(forged.status).toBeGreaterThanOrEqual(400);
        expect(forged.status).toBeLessThan(500);
        const body = (await forged.json()) as { error: string; client_id?: string };
        expect(body.client_id).toBeUndefined();
        if (forged.status === 400) expect(body.error).toBe('invalid_software_statement');
      } finally {
        await f.close();
      }
    },
  );

  it('refuses a request without software_statement', async () => {
    const { software_statement: _s, ...rest } = tpp.registration;
    expect(await register(rest)).toEqual({
      status: 400,
      body: { error: 'invalid_software_statement', error_description: 'software_statement is required and must be a signed JWT' },
    });
  });

  it('refuses a statement signed with a key the directory does not publish, even one carried in the statement', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const { exportJWK } = await import('jose');
    const forged = await new SignJWT({ software_id: 'x', org_id: 'y', software_roles: ['AISP'], software_redirect_uris: ['https://localhost:3000/callback'] })
      .setProtectedHeader({ alg: 'ES256', jwk: await exportJWK(publicKey) })
      .setIssuer('moat-sandbox-directory')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);
    const { status, body } = await register({ ...tpp.registration, software_statement: forged });
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_software_statement');
  });

  it('refuses a statement from a directory this server does not trust', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const other = await new SignJWT({ software_id: 'x', org_id: 'y' }).setProtectedHeader({ alg: 'ES256' }).setIssuer('Some Other Directory').sign(privateKey);
    expect(await register({ ...tpp.registration, software_statement: other })).toEqual({
      status: 400,
      body: {
        error: 'unapproved_software_statement',
        error_description: 'software_statement issuer "Some Other Directory" is not a directory this server trusts',
      },
    });
  });

  it('refuses an expired statement', async () => {
    const expired = await sandboxSsa({ exp: Math.floor(Date.now() / 1000) - 120 });
    expect(await register({ ...tpp.registration, software_statement: expired })).toEqual({
      status: 400,
      body: { error: 'invalid_software_statement', error_description: 'software_statement has expired' },
    });
  });

  describe('freshness of the statement (RFC 7519 §4.1.4, §4.1.6)', () => {
    it('refuses a statement without iat', async () => {
      const undated = await sandboxSsa({ iat: undefined });
      expect(await register({ ...tpp.registration, software_statement: undated })).toEqual({
        status: 400,
        body: { error: 'invalid_software_statement', error_description: 'software_statement lacks iat, the time the directory issued it' },
      });
    });

    it('refuses a statement dated an hour in the future (beyond the 10 s clock skew of FAPI 2.0 SP §5.3.2.1)', async () => {
      const future = await sandboxSsa({ iat: Math.floor(Date.now() / 1000) + 3600, exp: Math.floor(Date.now() / 1000) + 7200 });
      expect(await register({ ...tpp.registration, software_statement: future })).toEqual({
        status: 400,
        body: {
          error: 'invalid_software_statement',
          error_description: 'software_statement is dated in the future (iat); a directory issues statements for now',
        },
      });
    });

    it("accepts an iat a few seconds ahead of this server's clock", async () => {
      const ahead = await sandboxSsa({ iat: Math.floor(Date.now() / 1000) + 5 });
      expect((await register({ ...tpp.registration, software_statement: ahead })).status).toBe(201);
    });

    it('refuses a statement without exp from a directory whose statements must carry one (the sandbox directory: requireSsaExp)', async () => {
      const unbounded = await sandboxSsa({ exp: undefined });
      expect(await register({ ...tpp.registration, software_statement: unbounded })).toEqual({
        status: 400,
        body: {
          error: 'invalid_software_statement',
          error_description: 'software_statement lacks exp; statements of Moat sandbox directory must say when they expire',
        },
      });
    });
  });

  it('refuses an organisation whose directory status is not Active', async () => {
    const revoked = await sandboxSsa({ org_status: 'Revoked' });
    expect(await register({ ...tpp.registration, software_statement: revoked })).toEqual({
      status: 400,
      body: { error: 'unapproved_software_statement', error_description: 'the organisation\'s status in Moat sandbox directory is "Revoked", not Active' },
    });
  });

  it('refuses registration without a client certificate with invalid_client', async () => {
    const { status, body } = await register(tpp.registration, null);
    expect(status).toBe(401);
    expect(body.error).toBe('invalid_client');
  });

  it('refuses a certificate that does not chain to a trust anchor', async () => {
    const selfSigned = await createCa([{ OU: [String(tpp.summary.org_id)] }, { CN: ['self'] }], new Date());
    const { status, body } = await register(tpp.registration, selfSigned);
    expect(status).toBe(401);
    expect(body).toEqual({
      error: 'invalid_client',
      error_description: expect.stringMatching(/^the transport certificate is not trusted: no path from the certificate/),
    });
  });

  it('refuses a transport certificate of another organisation', async () => {
    const other = await issueTpp(h);
    const { status, body } = await register(tpp.registration, other);
    expect(status).toBe(400);
    expect(body).toEqual({
      error: 'unapproved_software_statement',
      error_description: `the transport certificate belongs to organisation "${String(other.summary.org_id)}" (OU) but the software statement's org_id is "${String(tpp.summary.org_id)}"`,
    });
  });

  it('refuses a redirect_uri that is not in the statement', async () => {
    expect(await register({ ...tpp.registration, redirect_uris: ['https://evil.example/cb'] })).toEqual({
      status: 400,
      body: {
        error: 'invalid_redirect_uri',
        error_description: "redirect_uri https://evil.example/cb is not among the software statement's software_redirect_uris",
      },
    });
  });

  it("refuses a scope the statement's roles do not allow", async () => {
    expect(await register({ ...tpp.registration, scope: 'openid payments' })).toEqual({
      status: 400,
      body: { error: 'invalid_client_metadata', error_description: 'scope payments requires one of the roles PISP; the software statement grants AISP' },
    });
  });

  it.each(['client_secret_basic', 'client_secret_post', 'none'])('refuses token_endpoint_auth_method %s (FAPI 2.0 SP §5.3.2.1)', async (method) => {
    const { status, body } = await register({ ...tpp.registration, token_endpoint_auth_method: method });
    expect(status).toBe(400);
    expect(body).toEqual({
      error: 'invalid_client_metadata',
      error_description: 'token_endpoint_auth_method must be one of tls_client_auth, self_signed_tls_client_auth, private_key_jwt (FAPI 2.0 SP §5.3.2.1)',
    });
  });

  it("refuses tls_client_auth without a subject DN, and with one that is not the certificate's", async () => {
    const { tls_client_auth_subject_dn: _dn, ...rest } = tpp.registration;
    expect((await register(rest)).body.error).toBe('invalid_client_metadata');
    const wrong = await register({ ...tpp.registration, tls_client_auth_subject_dn: 'CN=someone-else,OU=x,O=y,C=GB' });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error_description).toMatch(
      /^tls_client_auth_subject_dn does not match the presented certificate's subject CN=.* \(expected CN=someone-else, the certificate has CN=/,
    );
  });

  describe("statement values take precedence over the request's (RFC 7591 §2.3)", () => {
    const statementJwks = () =>
      (JSON.parse(Buffer.from(tpp.ssa.split('.')[1]!, 'base64url').toString()) as { software_jwks: { keys: Record<string, unknown>[] } }).software_jwks;

    it("accepts a request that repeats the statement's own jwks, members in any order", async () => {
      const [key] = statementJwks().keys;
      const reordered = { keys: [Object.fromEntries(Object.entries(key!).reverse())] };
      const { status, body } = await register({ ...tpp.registration, jwks: reordered });
      expect(status).toBe(201);
      expect(body.jwks).toEqual(statementJwks());
    });

    it("accepts a jwks_uri equal to the statement's software_jwks_endpoint", async () => {
      const ssa = await sandboxSsa({ software_jwks_endpoint: 'https://tpp.example/jwks' });
      const { status, body } = await register({ ...tpp.registration, software_statement: ssa, jwks_uri: 'https://tpp.example/jwks' });
      expect(status).toBe(201);
      expect(body.jwks_uri).toBe('https://tpp.example/jwks');
    });

    it("accepts the statement's keys written with other members, or fewer: keys compare by RFC 7638 thumbprint", async () => {
      const [key] = statementJwks().keys as { kty: string; crv: string; x: string; y: string }[];
      for (const written of [
        { kty: key!.kty, crv: key!.crv, x: key!.x, y: key!.y },
        { ...key, alg: 'ES256', use: 'sig', key_ops: ['verify'] },
      ]) {
        const { status, body } = await register({ ...tpp.registration, jwks: { keys: [written] } });
        expect({ status, jwks: body.jwks }).toEqual({ status: 201, jwks: statementJwks() });
      }
    });

    it('accepts a jwks_uri equal to the software_jwks_endpoint of a statement that also gives its keys by value, and registers those keys', async () => {
      const ssa = await sandboxSsa({ software_jwks: statementJwks(), software_jwks_endpoint: 'https://tpp.example/jwks' });
      const { status, body } = await register({ ...tpp.registration, software_statement: ssa, jwks_uri: 'https://tpp.example/jwks' });
      expect(status).toBe(201);
      expect(body.jwks).toEqual(statementJwks());
      expect(body.jwks_uri).toBeUndefined();
    });

    it('refuses another jwks_uri than the software_jwks_endpoint of a statement that gives both, naming the endpoint', async () => {
      const ssa = await sandboxSsa({ software_jwks: statementJwks(), software_jwks_endpoint: 'https://tpp.example/jwks' });
      expect(await register({ ...tpp.registration, software_statement: ssa, jwks_uri: 'https://attacker.example/jwks' })).toEqual({
        status: 400,
        body: {
          error: 'invalid_client_metadata',
          error_description:
            'jwks_uri "https://attacker.example/jwks" differs from the software statement\'s software_jwks_endpoint "https://tpp.example/jwks"; send the statement\'s value or leave jwks_uri out (RFC 7591 §2.3)',
        },
      });
    });

    it("accepts the statement's own values of software_id, client_name and software_roles", async () => {
      const { status } = await register({ ...tpp.registration, software_id: tpp.summary.software_id, client_name: 'Test Fintech', software_roles: ['AISP'] });
      expect(status).toBe(201);
    });

    it.each([
      [
        'software_id',
        { software_id: 'someone-else' },
        (): string =>
          `software_id "someone-else" differs from the software statement's software_id "${String(tpp.summary.software_id)}"; send the statement's value or leave software_id out (RFC 7591 §2.3)`,
      ],
      [
        'client_name',
        { client_name: 'Totally Your Bank' },
        (): string =>
          'client_name "Totally Your Bank" differs from the software statement\'s software_client_name "Test Fintech"; send the statement\'s value or leave client_name out (RFC 7591 §2.3)',
      ],
      [
        'software_roles',
        { software_roles: ['AISP', 'PISP'] },
        (): string =>
          'software_roles ["AISP","PISP"] differs from the software statement\'s software_roles ["AISP"]; send the statement\'s value or leave software_roles out (RFC 7591 §2.3)',
      ],
      [
        'jwks',
        {
          jwks: {
            keys: [
              { kty: 'EC', crv: 'P-256', kid: 'mine', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' },
            ],
          },
        },
        (): string =>
          `jwks (keys mine) differs from the software statement's software_jwks (keys ${String(statementJwks().keys[0]!.kid)}); send the statement's value or leave jwks out (RFC 7591 §2.3)`,
      ],
      [
        'jwks_uri',
        { jwks_uri: 'https://tpp.example/jwks' },
        (): string => "jwks_uri conflicts with the software statement, which gives the TPP's keys by value (software_jwks); leave jwks_uri out (RFC 7591 §2.3)",
      ],
    ])("refuses a %s that contradicts the statement, naming the field and the statement's value", async (_field, sent, description) => {
      expect(await register({ ...tpp.registration, ...sent })).toEqual({
        status: 400,
        body: { error: 'invalid_client_metadata', error_description: description() },
      });
    });

    it("refuses a jwks_uri other than the statement's software_jwks_endpoint", async () => {
      const ssa = await sandboxSsa({ software_jwks_endpoint: 'https://tpp.example/jwks' });
      expect(await register({ ...tpp.registration, software_statement: ssa, jwks_uri: 'https://attacker.example/jwks' })).toEqual({
        status: 400,
        body: {
          error: 'invalid_client_metadata',
          error_description:
            'jwks_uri "https://attacker.example/jwks" differs from the software statement\'s software_jwks_endpoint "https://tpp.example/jwks"; send the statement\'s value or leave jwks_uri out (RFC 7591 §2.3)',
        },
      });
    });

    it('refuses keys when the statement names none: they come only from the directory', async () => {
      const ssa = await sandboxSsa({});
      expect(await register({ ...tpp.registration, software_statement: ssa, jwks_uri: 'https://tpp.example/jwks' })).toEqual({
        status: 400,
        body: {
          error: 'invalid_client_metadata',
          error_description:
            "jwks_uri: the TPP's keys come only from the software statement (software_jwks or software_jwks_endpoint), and this one names none",
        },
      });
    });
  });

  it('refuses a body that is not JSON with invalid_request', async () => {
    const f = tlsFetch(tpp.serverCaPem, tpp);
    try {
      const res = await f(`${h.issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'invalid_request', error_description: 'the request body is not valid JSON' });
    } finally {
      await f.close();
    }
  });
});

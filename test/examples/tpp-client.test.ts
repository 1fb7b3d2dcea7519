import { execFile } from 'node:child_process';
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { importJWK, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { tlsFetch } from '../support/tpp-client.ts';

/*
 * examples/tpp-client, run as a TPP would run it: a real Moat over real TLS, sandbox credentials
 * from the real `moat sandbox tpp` command, and the example as its own Node process. What it prints
 * is checked against the certificate, and what it did is checked on the server — so the example
 * in the README cannot rot without this failing. It runs both ways a client may authenticate and
 * bind its tokens (FAPI 2.0 SP §5.3.2.1): tls_client_auth with certificate-bound tokens (the
 * default), and --auth private_key_jwt --dpop.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const EXAMPLE = 'examples/tpp-client/main.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node ARGS` from the repository root, as `npm start` / scripts/with-node.sh run Moat's own entry points. */
function node(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, args, { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      done({ code, stdout, stderr });
    });
  });
}

/** The value printed after `label` on a line of the example's output. */
function printed(stdout: string, label: string): string {
  const line = stdout.split('\n').find((l) => l.trimStart().startsWith(label));
  if (line === undefined) throw new Error(`the example printed no "${label}" line:\n${stdout}`);
  return line.slice(line.indexOf(label) + label.length).trim();
}

let h: Harness;
let work: string;
let credentials: string;
let run: Run;
let dpopRun: Run;

beforeAll(async () => {
  h = await startMoat();
  work = mkdtempSync(join(tmpdir(), 'moat-example-'));
  credentials = join(work, 'acme');
  // The README's step 1, through the CLI itself: the server's sandbox CA and directory key (its
  // dataDir), credentials written for its issuer.
  const issued = await node(['src/cli/main.ts', 'sandbox', 'tpp', '--name', 'Example Fintech', '--out', credentials], {
    ...process.env,
    MOAT_DATA_DIR: h.dataDir,
    MOAT_ISSUER: h.issuer,
  });
  if (issued.code !== 0) throw new Error(`moat sandbox tpp failed: ${issued.stderr}`);
  run = await node([EXAMPLE, '--issuer', h.issuer, '--credentials', credentials, '--print-token']);
  dpopRun = await node([EXAMPLE, '--issuer', h.issuer, '--credentials', credentials, '--auth', 'private_key_jwt', '--dpop', '--print-token']);
  // Three child Node processes, each starting from source: minutes on a loaded 2-core CI machine.
}, 240_000);

afterAll(async () => {
  await h?.close();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

function certificateThumbprint(): string {
  return createHash('sha256')
    .update(new X509Certificate(readFileSync(join(credentials, 'transport.pem'))).raw)
    .digest('base64url');
}

describe('the example TPP client against a running Moat', () => {
  it('exits 0 after every step, saying each in plain words', () => {
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: expect.not.stringContaining('FAILED') });
    const steps = run.stdout
      .split('\n')
      .filter((l) => /^\d\. /.test(l))
      .map((l) => l.slice(0, l.indexOf(':')));
    expect(steps).toEqual([
      '1. Discovery',
      '2. Registration',
      '3. Pushed authorization request',
      '4. The customer (sandbox customer helper, standing in for a browser)',
      '5. Token',
      '6. Introspection',
      '7. Sandbox API',
    ]);
    expect(run.stdout).toContain('alice signed in and pressed Allow');
    expect(run.stdout).toMatch(/7\. Sandbox API: GET \/sandbox-api\/accounts answered 200 with 3 account\(s\)/);
    expect(run.stdout).toMatch(/\n {2}acc-alice-current \(40001712345678\): balance \d+\.\d{2}\n/);
  });

  it("prints a token bound to the transport certificate: cnf x5t#S256 = the certificate's SHA-256 thumbprint", () => {
    const thumbprint = certificateThumbprint();
    expect(JSON.parse(readFileSync(join(credentials, 'tpp.json'), 'utf8'))['x5t#S256']).toBe(thumbprint);
    expect(printed(run.stdout, 'bound to certificate x5t#S256:')).toBe(thumbprint);
    expect(printed(run.stdout, "our certificate's x5t#S256:")).toBe(thumbprint);
  });

  it("ends with one JSON line for scripts: the thumbprint check's result and the API call's status", () => {
    const last = run.stdout.trimEnd().split('\n').at(-1)!;
    expect(JSON.parse(last)).toEqual({
      firstCall: 'done',
      certificateBound: true,
      'x5t#S256': certificateThumbprint(),
      introspectedX5tS256: certificateThumbprint(),
      clientId: printed(run.stdout, 'client_id:'),
      apiStatus: 200,
      accounts: 3,
    });
  });

  it('registered a tls_client_auth client whose certificate the registry records as active', async () => {
    const clientId = printed(run.stdout, 'client_id:');
    const summary = JSON.parse(readFileSync(join(credentials, 'tpp.json'), 'utf8')) as Record<string, string>;
    expect(printed(run.stdout, 'client authentication:')).toBe(`tls_client_auth as ${summary.tls_client_auth_subject_dn}`);
    const certificate = await h.moat.certificates.registry.find(certificateThumbprint());
    // The private_key_jwt run below registered another client with the same transport certificate.
    expect(certificate).toEqual(expect.objectContaining({ usage: 'transport', status: 'active', clients: expect.arrayContaining([clientId]) }));
  });

  it('left an active token on the server, bound to the certificate and refused without it', async () => {
    const clientId = printed(run.stdout, 'client_id:');
    const accessToken = printed(run.stdout, 'access token value:');
    const serverCaPem = readFileSync(join(credentials, 'server-ca.pem'), 'utf8');
    const withCertificate = tlsFetch(serverCaPem, {
      certPem: readFileSync(join(credentials, 'transport.pem'), 'utf8'),
      keyPem: readFileSync(join(credentials, 'transport.key'), 'utf8'),
    });
    const withoutCertificate = tlsFetch(serverCaPem);
    try {
      const issuer = new URL(h.issuer);
      const as = await oauth.processDiscoveryResponse(
        issuer,
        await oauth.discoveryRequest(issuer, { [oauth.customFetch]: withCertificate, algorithm: 'oidc' }),
      );
      const client = { client_id: clientId };
      const introspection = await oauth.processIntrospectionResponse(
        as,
        client,
        await oauth.introspectionRequest(as, client, oauth.TlsClientAuth(), accessToken, { [oauth.customFetch]: withCertificate }),
      );
      expect(introspection).toEqual(
        expect.objectContaining({
          active: true,
          client_id: clientId,
          sub: 'cust-alice',
          scope: 'accounts',
          aud: `${h.issuer}/sandbox-api`,
          cnf: { 'x5t#S256': certificateThumbprint() },
          consent_id: printed(run.stdout, 'consent:'),
        }),
      );
      // RFC 8705 §3: the same token over a connection without the certificate is useless.
      const stolen = await withoutCertificate(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `Bearer ${accessToken}` } });
      expect(stolen.status).toBe(401);
    } finally {
      await withCertificate.close();
      await withoutCertificate.close();
    }
  });

  it('left an account-access consent Authorised by alice for the accounts she shared', async () => {
    const consent = await h.moat.consents.getForCustomer(printed(run.stdout, 'consent:'), 'cust-alice');
    expect(consent).toEqual(
      expect.objectContaining({ status: 'Authorised', kind: 'account_access', origin: 'authorization_details', clientId: printed(run.stdout, 'client_id:') }),
    );
  });

  it('exits 1 with the OAuth error and its description when Moat refuses a step', async () => {
    const tampered = join(work, 'tampered');
    cpSync(credentials, tampered, { recursive: true });
    const registration = JSON.parse(readFileSync(join(tampered, 'registration.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(tampered, 'registration.json'), JSON.stringify({ ...registration, redirect_uris: ['https://attacker.example/callback'] }));
    const refused = await node([EXAMPLE, '--issuer', h.issuer, '--credentials', tampered]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      "FAILED at step 2 (registration): invalid_redirect_uri: redirect_uri https://attacker.example/callback is not among the software statement's software_redirect_uris",
    );
    expect(refused.stdout).not.toContain('3. Pushed authorization request');
  });
});

describe('the example TPP client with --auth private_key_jwt --dpop (issue 14)', () => {
  it('exits 0 after every step, registering over mutual TLS and then presenting no certificate', () => {
    expect({ code: dpopRun.code, stderr: dpopRun.stderr }).toEqual({ code: 0, stderr: expect.not.stringContaining('FAILED') });
    const steps = dpopRun.stdout
      .split('\n')
      .filter((l) => /^\d\. /.test(l))
      .map((l) => l.slice(0, l.indexOf(':')));
    expect(steps).toEqual([
      '1. Discovery',
      '2. Registration',
      '3. Pushed authorization request',
      '4. The customer (sandbox customer helper, standing in for a browser)',
      '5. Token',
      '6. Introspection',
      '7. Sandbox API',
    ]);
    expect(dpopRun.stdout).toContain('5. Token: exchanged the code (with the PKCE verifier) with a client assertion and a DPoP proof');
    expect(dpopRun.stdout).toMatch(/7\. Sandbox API: GET \/sandbox-api\/accounts answered 200 with 3 account\(s\)/);
  });

  it("registered a private_key_jwt client with DPoP-bound tokens, whose key is the software statement's", async () => {
    const clientId = printed(dpopRun.stdout, 'client_id:');
    const signing = JSON.parse(readFileSync(join(credentials, 'signing.public.jwks.json'), 'utf8')) as { keys: { kid: string }[] };
    expect(printed(dpopRun.stdout, 'client authentication:')).toBe(
      `private_key_jwt with the signing key ${signing.keys[0]!.kid} (the software statement's software_jwks)`,
    );
    const client = await h.moat.provider.Client.find(clientId);
    expect(client?.metadata()).toEqual(
      expect.objectContaining({
        token_endpoint_auth_method: 'private_key_jwt',
        dpop_bound_access_tokens: true,
        tls_client_certificate_bound_access_tokens: false,
        jwks: signing,
      }),
    );
  });

  it("bound the code at PAR (dpop_jkt) and the token to the DPoP key: cnf.jkt = the key's thumbprint", () => {
    const jkt = printed(dpopRun.stdout, 'the code is bound to our DPoP key: dpop_jkt');
    expect(jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(printed(dpopRun.stdout, 'bound to DPoP key jkt:')).toBe(jkt);
    expect(JSON.parse(dpopRun.stdout.trimEnd().split('\n').at(-1)!)).toEqual({
      firstCall: 'done',
      auth: 'private_key_jwt',
      dpopBound: true,
      jkt,
      introspectedJkt: jkt,
      clientId: printed(dpopRun.stdout, 'client_id:'),
      apiStatus: 200,
      accounts: 3,
    });
  });

  it('left a token the API refuses without a proof of the key, even over the transport certificate', async () => {
    const accessToken = printed(dpopRun.stdout, 'access token value:');
    const withCertificate = tlsFetch(readFileSync(join(credentials, 'server-ca.pem'), 'utf8'), {
      certPem: readFileSync(join(credentials, 'transport.pem'), 'utf8'),
      keyPem: readFileSync(join(credentials, 'transport.key'), 'utf8'),
    });
    try {
      const res = await withCertificate(`${h.issuer}/sandbox-api/accounts`, { headers: { authorization: `DPoP ${accessToken}` } });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'invalid_dpop_proof', error_description: 'DPoP proof missing' });
    } finally {
      await withCertificate.close();
    }
  });

  it('accepts a client assertion whose aud is the issuer, as one string — not the token endpoint, not an array (README)', async () => {
    const clientId = printed(dpopRun.stdout, 'client_id:');
    const jwk = (JSON.parse(readFileSync(join(credentials, 'signing.jwks.json'), 'utf8')) as { keys: Record<string, string>[] }).keys[0]!;
    const key = await importJWK(jwk, 'ES256');
    const plain = tlsFetch(readFileSync(join(credentials, 'server-ca.pem'), 'utf8'));
    const introspect = async (aud: string | string[]) => {
      const now = Math.floor(Date.now() / 1000);
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: jwk.kid! })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(aud)
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .setJti(randomUUID())
        .sign(key);
      const res = await plain(`${h.issuer}/introspect`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          token: 'unknown',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }).toString(),
      });
      return res.status;
    };
    try {
      expect(await introspect(h.issuer)).toBe(200);
      expect(await introspect(`${h.issuer}/token`)).toBe(401);
      expect(await introspect([h.issuer, 'https://elsewhere.example'])).toBe(401);
    } finally {
      await plain.close();
    }
  });
});

describe("the README's registration bodies", () => {
  const block = (name: string) => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const between = readme.slice(readme.indexOf(`<!-- ${name}:begin -->`), readme.indexOf(`<!-- ${name}:end -->`));
    return between.slice(between.indexOf('\n', between.indexOf('```')) + 1, between.lastIndexOf('```'));
  };

  it('shows the tls_client_auth body moat sandbox tpp writes', () => {
    const written = JSON.parse(readFileSync(join(credentials, 'registration.json'), 'utf8')) as Record<string, unknown>;
    const shown = JSON.parse(block('tls-client-auth-registration')) as Record<string, unknown>;
    expect(Object.keys(shown)).toEqual(Object.keys(written));
    const { software_statement: _s, tls_client_auth_subject_dn: _dn, ...constant } = shown;
    expect(written).toEqual(expect.objectContaining(constant));
  });

  it('registers for private_key_jwt with DPoP with the curl command as written (issue 14)', async () => {
    const script = `TLS="--cacert acme/server-ca.pem --cert acme/transport.pem --key acme/transport.key -s"\n${block('private-key-jwt-registration').replaceAll('https://localhost:8443', h.issuer)}`;
    const { stdout, stderr } = await promisify(execFile)('bash', ['-c', script], { cwd: work, timeout: 30_000 });
    expect(stderr).toBe('');
    expect(JSON.parse(stdout)).toEqual(
      expect.objectContaining({
        token_endpoint_auth_method: 'private_key_jwt',
        dpop_bound_access_tokens: true,
        tls_client_certificate_bound_access_tokens: false,
        jwks: JSON.parse(readFileSync(join(credentials, 'signing.public.jwks.json'), 'utf8')),
      }),
    );
  });
});

import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { issueSandboxTpp } from '../../src/sandbox/tpp-credentials.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createMoatServer } from '../../src/server.ts';
import { seedSandboxCustomers } from '../../src/storage/sql/customer-directory.ts';
import { withServices } from '../support/databases.ts';
import { runMoat } from '../support/cli.ts';
import { startMoat, type Harness } from '../support/moat-harness.ts';
import { tlsFetch } from '../support/tpp-client.ts';

/*
 * Production mode: real storage required, no sandbox shortcut anywhere — no generated PKI, no
 * sandbox directory, no demo customers, no sandbox API.
 */

/** Production requires the admin listener's authentication: a token file the operator made. */
function adminWithToken(dir: string): Record<string, unknown> {
  const tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, 'production-admin-token-0123456789abcdef\n', { mode: 0o600 });
  return { port: 0, tokenFile };
}

(withServices() ? describe : describe.skip)('Moat in production mode', () => {
  let h: Harness;
  let serverCaPem: string;

  beforeAll(async () => {
    // The "bank's" PKI for this test comes from a sandbox made elsewhere, as files an operator provides.
    const pki = await ensureSandboxMaterial(mkdtempSync(join(tmpdir(), 'moat-bank-pki-')));
    serverCaPem = pki.serverCaPem;
    h = await startMoat({
      config: {
        mode: 'production',
        admin: adminWithToken(pki.dir),
        sca: { totp: { encryptionKey: randomBytes(32).toString('base64url') } },
        tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile },
        trustAnchors: [pki.tppCaCertFile],
        directories: [{ name: 'Directory', issuer: 'OpenBanking Ltd', jwksFile: pki.directory.jwksFile }],
      },
    });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('creates no sandbox material in its data directory', async () => {
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(h.dataDir)).not.toContain('sandbox');
  });

  it('offers no decoupled authorisation without the bank app to answer it', async () => {
    const f = tlsFetch(serverCaPem);
    try {
      const metadata = (await (await f(`${h.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      expect(metadata.backchannel_authentication_endpoint).toBeUndefined();
      expect(metadata.grant_types_supported).not.toContain('urn:openid:params:grant-type:ciba');
    } finally {
      await f.close();
    }
  });

  it('has no sandbox API', async () => {
    const f = tlsFetch(serverCaPem);
    try {
      expect((await f(`${h.issuer}/sandbox-api/accounts`)).status).toBe(404);
      const metadata = (await (await f(`${h.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
      expect(metadata.issuer).toBe(h.issuer);
    } finally {
      await f.close();
    }
  });

  it('has no developer portal, and no diagnostics view unless diagnostics.enabled says so', async () => {
    const f = tlsFetch(serverCaPem);
    try {
      expect((await f(`${h.issuer}/portal`)).status).toBe(404);
      expect((await f(`${h.issuer}/diagnostics/calls`)).status).toBe(404);
    } finally {
      await f.close();
    }
  });

  it('trusts no sandbox directory: a sandbox SSA is an unapproved software statement', async () => {
    const f = tlsFetch(serverCaPem);
    try {
      const sandboxSsa = `${Buffer.from(JSON.stringify({ alg: 'ES256' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: 'moat-sandbox-directory' })).toString('base64url')}.sig`;
      const res = await f(`${h.issuer}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ software_statement: sandboxSsa }),
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({
        error: 'unapproved_software_statement',
        error_description: 'software_statement issuer "moat-sandbox-directory" is not a directory this server trusts',
      });
    } finally {
      await f.close();
    }
  });

  it('has no demo customers', async () => {
    const { rows } = await h.moat.storage.sql.query('SELECT id FROM customer');
    expect(rows).toEqual([]);
  });

  it('refuses to start on a database the sandbox seeded: its demo customers have public passwords', async () => {
    await seedSandboxCustomers(h.moat.storage.sql);
    try {
      await expect(createMoatServer(h.config, createLogger('silent'))).rejects.toThrow(
        /^the database holds the sandbox's demo customers \(alice, bob\), whose passwords are public; production refuses to start on it: delete them \(DELETE FROM customer WHERE id IN \('cust-alice', 'cust-bob'\)\)/,
      );
    } finally {
      await h.moat.storage.sql.query("DELETE FROM customer WHERE id IN ('cust-alice', 'cust-bob')");
    }
  });
});

(withServices() ? describe : describe.skip)('production mode with diagnostics.enabled: true', () => {
  it('serves the diagnostics view to a TPP over mutual TLS, still without a portal', async () => {
    const pki = await ensureSandboxMaterial(mkdtempSync(join(tmpdir(), 'moat-bank-pki-')));
    const h = await startMoat({
      config: {
        mode: 'production',
        diagnostics: { enabled: true },
        admin: adminWithToken(pki.dir),
        sca: { totp: { encryptionKey: randomBytes(32).toString('base64url') } },
        tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile },
        trustAnchors: [pki.tppCaCertFile],
        directories: [{ name: 'Directory', issuer: 'OpenBanking Ltd', jwksFile: pki.directory.jwksFile }],
      },
    });
    const tpp = await issueSandboxTpp(pki, { name: 'Prod TPP', issuer: h.issuer });
    const f = tlsFetch(pki.serverCaPem, { certPem: tpp.transportCertPem, keyPem: tpp.transportKeyPem });
    try {
      const refused = await f(`${h.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&client_id=nobody',
      });
      expect(refused.status).toBe(401);
      const res = await f(`${h.issuer}/diagnostics/calls/${refused.headers.get('x-fapi-interaction-id')}`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { calls: { path: string }[] }).calls[0]!.path).toBe('/token');
      expect((await f(`${h.issuer}/portal`)).status).toBe(404);
    } finally {
      await f.close();
      await h.close();
    }
  });
});

if (!withServices()) it.skip('production mode needs Postgres and Redis (embedded-only run)', () => {});

describe('moat start in production mode', () => {
  // Everything else production needs is there: only the admin listener's authentication is missing.
  const env = {
    MOAT_MODE: 'production',
    MOAT_STORAGE__POSTGRES_URL: 'postgres://moat@127.0.0.1:9/moat',
    MOAT_STORAGE__REDIS_URL: 'redis://127.0.0.1:9',
    MOAT_TLS__CERT_FILE: 'server.pem',
    MOAT_TLS__KEY_FILE: 'server.key',
    MOAT_TRUST_ANCHORS: '["tpp-ca.pem"]',
  };

  it.each(['127.0.0.1', 'localhost', '0.0.0.0'])(
    'refuses to start with an admin listener on %s without operator authentication, naming the keys',
    async (host) => {
      const r = await runMoat(['start'], { env: { ...env, MOAT_ADMIN__HOST: host } });
      expect(r.code).toBe(1);
      expect(r.err).toContain('admin.tokenFile or admin.tls: one is required in production');
      expect(r.out).toBe('');
    },
  );
});

import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { issueSandboxTpp } from '../../src/sandbox/tpp-credentials.ts';

describe('sandbox material', () => {
  it('is created once and loaded afterwards', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-sbx-'));
    const first = await ensureSandboxMaterial(dir);
    const second = await ensureSandboxMaterial(dir);
    expect(second.serverCaPem).toBe(first.serverCaPem);
    expect(second.directory.privateJwk.kid).toBe(first.directory.privateJwk.kid);
    for (const secret of ['server.key', 'server-ca.key', 'tpp-ca.key', 'directory.jwks.json']) {
      expect(statSync(join(first.dir, secret)).mode & 0o777).toBe(0o600);
    }
  });

  it('ends up as one sandbox when two starts race for it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-sbx-'));
    const [a, b] = await Promise.all([ensureSandboxMaterial(dir), ensureSandboxMaterial(dir)]);
    expect(a.serverCaPem).toBe(b.serverCaPem);
    expect(readdirSync(dir)).toEqual(['sandbox']);
  });

  it('keeps the server CA and the TPP CA apart, so a server certificate never authenticates a client', async () => {
    const m = await ensureSandboxMaterial(mkdtempSync(join(tmpdir(), 'moat-sbx-')));
    const { readFileSync } = await import('node:fs');
    const server = new X509Certificate(readFileSync(m.serverCertFile));
    expect(server.verify(new X509Certificate(m.serverCaPem).publicKey)).toBe(true);
    expect(server.verify(new X509Certificate(m.tppCaPem).publicKey)).toBe(false);
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
  });
});

describe('sandbox TPP credentials', () => {
  it('chain to the TPP CA, not the server CA, and carry the UK Open Banking subject', async () => {
    const m = await ensureSandboxMaterial(mkdtempSync(join(tmpdir(), 'moat-sbx-')));
    const tpp = await issueSandboxTpp(m, { name: 'Acme', issuer: 'https://localhost:8443', orgId: 'org-1', softwareId: 'sw-1' });
    const cert = new X509Certificate(tpp.transportCertPem);
    expect(cert.verify(new X509Certificate(m.tppCaPem).publicKey)).toBe(true);
    expect(cert.verify(new X509Certificate(m.serverCaPem).publicKey)).toBe(false);
    expect(tpp.subjectDn).toBe('CN=sw-1, OU=org-1, O=Acme, C=GB');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
  });
});

import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { createCa, issueLeaf, type IssuedCertificate } from '../../src/sandbox/pki.ts';
import { loadTrustAnchors, type TrustAnchors } from '../../src/tls/certificate-chain.ts';
import { createClientCertificateResolver, createProxyAllowList, type IgnoredHeader, type PresentedCertificate } from '../../src/tls/client-certificate.ts';
import { formatDistinguishedName } from '../../src/tls/distinguished-name.ts';
import { createHttpsServer, tlsServerOptions } from '../../src/tls/https-server.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/*
 * Real TLS on loopback: what the server learns about the client certificate, from the handshake or
 * from a gateway's header, and what the handshake refuses (FAPI 2.0 SP §5.2.1, BCP 195).
 */

const NOW = new Date();
let serverCa: IssuedCertificate;
let server: IssuedCertificate;
let tppCa: IssuedCertificate;
let tpp: IssuedCertificate;
let anchors: TrustAnchors;

beforeAll(async () => {
  serverCa = await createCa([{ CN: ['Server CA'] }], NOW);
  server = await issueLeaf(serverCa, { subject: [{ CN: ['localhost'] }], usage: 'serverAuth', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now: NOW });
  tppCa = await createCa([{ CN: ['TPP CA'] }], NOW);
  tpp = await issueLeaf(tppCa, { subject: [{ C: ['GB'] }, { OU: ['org-1'] }, { CN: ['sw-1'] }], usage: 'clientAuth', now: NOW });
  const dir = mkdtempSync(join(tmpdir(), 'moat-tls-'));
  writeFileSync(join(dir, 'tpp-ca.pem'), tppCa.certPem);
  anchors = loadTrustAnchors([join(dir, 'tpp-ca.pem')]);
});

async function serve(options: { trustedProxies?: string[]; format?: 'rfc9440' | 'nginx' | 'envoy-xfcc' } = {}) {
  const ignored: IgnoredHeader[] = [];
  const seen: (PresentedCertificate | undefined)[] = [];
  const resolve = createClientCertificateResolver({
    trustedProxies: options.trustedProxies ?? [], format: options.format ?? 'rfc9440', anchors, onIgnoredHeader: (i) => ignored.push(i),
  });
  const srv: Server = createHttpsServer({
    cert: server.certPem, key: server.keyPem, ca: anchors.pem,
    handler: (req, res) => {
      seen.push(resolve(req));
      res.end('ok');
    },
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  const get = (opts: { cert?: IssuedCertificate; headers?: Record<string, string> } = {}) => new Promise<number>((resolveStatus, reject) => {
    const req = request({
      host: '127.0.0.1', port, path: '/', ca: serverCa.certPem, servername: 'localhost', agent: false,
      ...(opts.cert === undefined ? {} : { cert: opts.cert.certPem, key: opts.cert.keyPem }),
      headers: opts.headers ?? {},
    }, (res) => { res.resume(); res.on('end', () => resolveStatus(res.statusCode ?? 0)); });
    req.on('error', reject);
    req.end();
  });
  return { get, seen, ignored, port, close: () => new Promise<void>((r) => { srv.closeAllConnections(); srv.close(() => r()); }) };
}

describe('the client certificate from the TLS handshake (RFC 8705 §2)', () => {
  it('is requested but not required: a browser without one still gets a response', async () => {
    const s = await serve();
    try {
      expect(await s.get()).toBe(200);
      expect(s.seen).toEqual([undefined]);
    } finally {
      await s.close();
    }
  });

  it('is read with its subject, thumbprint and a trusted chain', async () => {
    const s = await serve();
    try {
      await s.get({ cert: tpp });
      const presented = s.seen[0]!;
      expect(presented.via).toBe('tls');
      expect(presented.verification.trusted).toBe(true);
      expect(formatDistinguishedName(presented.subject)).toBe('CN=sw-1, OU=org-1, C=GB');
      expect(presented.certificate.raw.equals(new X509Certificate(tpp.certPem).raw)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('is read but marked untrusted when it does not chain to a trust anchor', async () => {
    const s = await serve();
    try {
      const stranger = await createCa([{ CN: ['self-signed tpp'] }], NOW);
      await s.get({ cert: stranger });
      expect(s.seen[0]?.verification).toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
    } finally {
      await s.close();
    }
  });
});

describe('the TLS handshake (FAPI 2.0 SP §5.2.1, BCP 195)', () => {
  const handshake = (port: number, options: { maxVersion?: 'TLSv1.1' | 'TLSv1.2'; ciphers?: string }) => new Promise<string>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: serverCa.certPem, minVersion: 'TLSv1', ...options }, () => {
      resolve(`ok ${socket.getProtocol()} ${socket.getCipher().name}`);
      socket.destroy();
    });
    socket.on('error', (err) => resolve(`refused: ${err.message}`));
  });

  it('refuses TLS 1.1', async () => {
    // This machine's OpenSSL refuses TLS 1.1 client-side too, so the option is asserted as well.
    expect(tlsServerOptions({ cert: '', key: '' })).toEqual(expect.objectContaining({ minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false }));
    const s = await serve();
    try {
      expect(await handshake(s.port, { maxVersion: 'TLSv1.1' })).toMatch(/^refused/);
    } finally {
      await s.close();
    }
  });

  it('refuses TLS 1.2 with a CBC cipher or RSA key exchange', async () => {
    const s = await serve();
    try {
      expect(await handshake(s.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' })).toMatch(/^refused/);
      expect(await handshake(s.port, { maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256' })).toMatch(/^refused/);
    } finally {
      await s.close();
    }
  });

  it('accepts TLS 1.2 with ECDHE and AES-GCM, and TLS 1.3', async () => {
    const s = await serve();
    try {
      expect(await handshake(s.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).toBe('ok TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256');
      expect(await handshake(s.port, {})).toMatch(/^ok TLSv1\.3 /);
    } finally {
      await s.close();
    }
  });
});

describe('a client certificate forwarded by a gateway', () => {
  const der = () => new X509Certificate(tpp.certPem).raw.toString('base64');

  it('is taken from Client-Cert (RFC 9440) when the sender is a trusted proxy', async () => {
    const s = await serve({ trustedProxies: ['127.0.0.1'] });
    try {
      await s.get({ headers: { 'client-cert': `:${der()}:` } });
      expect(s.seen[0]).toEqual(expect.objectContaining({ via: 'forwarded' }));
      expect(s.seen[0]?.verification.trusted).toBe(true);
      expect(s.ignored).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('is taken from nginx X-SSL-Client-Cert (escaped PEM) and from Envoy XFCC', async () => {
    const nginx = await serve({ trustedProxies: ['127.0.0.0/8'], format: 'nginx' });
    const envoy = await serve({ trustedProxies: ['::1', '127.0.0.1'], format: 'envoy-xfcc' });
    try {
      await nginx.get({ headers: { 'x-ssl-client-cert': encodeURIComponent(tpp.certPem) } });
      expect(nginx.seen[0]?.verification.trusted).toBe(true);
      await envoy.get({ headers: { 'x-forwarded-client-cert': `By=spiffe://a;Hash=abc,By=spiffe://gw;Hash=def;Cert="${encodeURIComponent(tpp.certPem)}";Subject="CN=sw-1,OU=org-1"` } });
      expect(envoy.seen[0]?.verification.trusted).toBe(true);
      expect(formatDistinguishedName(envoy.seen[0]!.subject)).toBe('CN=sw-1, OU=org-1, C=GB');
    } finally {
      await nginx.close();
      await envoy.close();
    }
  });

  it('is ignored, and reported, when the sender is not a trusted proxy', async () => {
    const s = await serve({ trustedProxies: ['10.0.0.0/8'] });
    try {
      await s.get({ headers: { 'client-cert': `:${der()}:` } });
      expect(s.seen).toEqual([undefined]);
      expect(s.ignored).toEqual([expect.objectContaining({ reason: 'untrusted-sender', header: 'client-cert' })]);
    } finally {
      await s.close();
    }
  });

  it('is treated as absent, and reported, when a trusted proxy sends it malformed', async () => {
    const s = await serve({ trustedProxies: ['127.0.0.1'] });
    try {
      await s.get({ headers: { 'client-cert': 'not a byte sequence' } });
      expect(s.seen).toEqual([undefined]);
      expect(s.ignored).toEqual([expect.objectContaining({ reason: 'malformed' })]);
    } finally {
      await s.close();
    }
  });
});

describe('trusted proxy addresses', () => {
  it('accept addresses and CIDR ranges of both families and name a bad entry', () => {
    const list = createProxyAllowList(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32']);
    expect(list.check('10.1.2.3', 'ipv4')).toBe(true);
    expect(list.check('192.0.2.8', 'ipv4')).toBe(false);
    expect(list.check('2001:db8::1', 'ipv6')).toBe(true);
    expect(() => createProxyAllowList(['gateway.local'])).toThrow('trustedProxies.addresses: "gateway.local" is not an IP address or CIDR range');
    expect(() => createProxyAllowList(['10.0.0.0/40'])).toThrow(/invalid prefix length/);
  });
});

import { constants } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, createServer as createPlainTlsServer, type ConnectionOptions, type Server as TlsServer } from 'node:tls';
import type { Server } from 'node:http';
import { createServer as createHttpsTlsServer } from 'node:https';
import { createHttpServer, createHttpsServer, refuseRenegotiation, tlsServerOptions } from '../../src/tls/https-server.ts';
import { createTestCa, issueLeaf, type TestCa, type TestCertificate } from '../support/pki.ts';

/*
 * Real handshakes on loopback against Moat's TLS listener (FAPI 2.0 SP §5.2.1, RFC 9325). Each
 * refusal is paired with a control: a server with OpenSSL's permissive settings accepts the same
 * client, so the refusal is the policy's doing and not this machine's OpenSSL defaults.
 */

let serverCa: TestCa;
let rsaServer: TestCertificate;
let ecdsaServer: TestCertificate;

beforeAll(async () => {
  serverCa = await createTestCa([{ CN: ['Server CA'] }]);
  const server = { subject: [{ CN: ['localhost'] }], eku: ['serverAuth'], san: { dns: ['localhost'], ip: ['127.0.0.1'] } };
  rsaServer = await issueLeaf(serverCa, { ...server, keyAlgorithm: 'RSA' });
  ecdsaServer = await issueLeaf(serverCa, server);
});

async function listen<T extends Server | TlsServer>(server: T): Promise<{ port: number; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const moat = (cert: TestCertificate) => listen(createHttpsServer({ cert: cert.certPem, key: cert.keyPem, handler: (_req, res) => res.end('ok') }));
/** OpenSSL at its most permissive: TLS 1.0 up, every cipher at security level 0, DHE enabled. */
const permissive = (cert: TestCertificate) =>
  listen(
    createPlainTlsServer(
      {
        cert: cert.certPem,
        key: cert.keyPem,
        minVersion: 'TLSv1',
        ciphers: 'ALL@SECLEVEL=0',
        dhparam: 'auto',
      },
      (socket) => socket.end(),
    ),
  );

/** `ok <protocol> <cipher>` when the handshake completes, `refused` when it does not. */
function handshake(port: number, options: ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: serverCa.certPem, ...options }, () => {
      resolve(`ok ${socket.getProtocol()} ${socket.getCipher().name}`);
      socket.destroy();
    });
    socket.on('error', () => resolve('refused'));
  });
}

/** `renegotiated` when a TLS 1.2 client's renegotiation completes; `refused` when the server ends the connection instead. */
function renegotiation(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: serverCa.certPem, maxVersion: 'TLSv1.2' }, () => {
      socket.resume();
      const renegotiating = socket.renegotiate({ rejectUnauthorized: true }, (err) => {
        resolve(err === null ? 'renegotiated' : 'refused');
        socket.destroy();
      });
      if (!renegotiating) resolve('not started');
    });
    socket.on('error', () => resolve('refused'));
    socket.on('close', () => resolve('refused'));
  });
}

const TLS11 = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'ALL@SECLEVEL=0' } as const;

describe('the TLS listener (FAPI 2.0 SP §5.2.1, BCP 195)', () => {
  it('refuses a TLS 1.1 client that a permissive server accepts', async () => {
    const control = await permissive(rsaServer);
    const server = await moat(rsaServer);
    try {
      expect(await handshake(control.port, TLS11)).toMatch(/^ok TLSv1\.1 /);
      expect(await handshake(server.port, TLS11)).toBe('refused');
    } finally {
      await control.close();
      await server.close();
    }
  });

  it.each([
    ['RSA key transport', 'AES128-GCM-SHA256'],
    ['CBC with ECDHE-RSA', 'ECDHE-RSA-AES128-SHA256'],
    ['CBC with ECDHE-ECDSA', 'ECDHE-ECDSA-AES128-SHA256'],
    ['finite-field DHE', 'DHE-RSA-AES128-GCM-SHA256'],
  ])('refuses a TLS 1.2 client offering only %s (%s)', async (_what, cipher) => {
    const cert = cipher.includes('ECDSA') ? ecdsaServer : rsaServer;
    const control = await permissive(cert);
    const server = await moat(cert);
    try {
      expect(await handshake(control.port, { maxVersion: 'TLSv1.2', ciphers: cipher })).toBe(`ok TLSv1.2 ${cipher}`);
      expect(await handshake(server.port, { maxVersion: 'TLSv1.2', ciphers: cipher })).toBe('refused');
    } finally {
      await control.close();
      await server.close();
    }
  });

  it('accepts TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305, for RSA and ECDSA certificates', async () => {
    const rsa = await moat(rsaServer);
    const ecdsa = await moat(ecdsaServer);
    try {
      for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
        expect(await handshake(rsa.port, { maxVersion: 'TLSv1.2', ciphers: cipher })).toBe(`ok TLSv1.2 ${cipher}`);
      }
      for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
        expect(await handshake(ecdsa.port, { maxVersion: 'TLSv1.2', ciphers: cipher })).toBe(`ok TLSv1.2 ${cipher}`);
      }
    } finally {
      await rsa.close();
      await ecdsa.close();
    }
  });

  it("chooses by its own cipher order, not the client's", async () => {
    const server = await moat(rsaServer);
    try {
      expect(await handshake(server.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256' })).toBe(
        'ok TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256',
      );
    } finally {
      await server.close();
    }
  });

  it('accepts TLS 1.3', async () => {
    const server = await moat(ecdsaServer);
    try {
      expect(await handshake(server.port, {})).toMatch(/^ok TLSv1\.3 TLS_(AES_\d+_GCM_SHA\d+|CHACHA20_POLY1305_SHA256)$/);
    } finally {
      await server.close();
    }
  });

  it('requests a client certificate without requiring one, and does not resume sessions', () => {
    expect(tlsServerOptions({ cert: 'c', key: 'k', ca: 'anchors' })).toEqual(
      expect.objectContaining({
        cert: 'c',
        key: 'k',
        ca: 'anchors',
        minVersion: 'TLSv1.2',
        honorCipherOrder: true,
        requestCert: true,
        rejectUnauthorized: false,
        sessionTimeout: 0,
      }),
    );
    expect(tlsServerOptions({ cert: 'c', key: 'k', ca: '' })).not.toHaveProperty('ca');
  });

  it('resumes sessions by tickets only when given a session lifetime (the public listener, tls/session-chains.ts)', () => {
    const resuming = tlsServerOptions({ cert: 'c', key: 'k', ca: 'anchors', sessionLifetimeSeconds: 300 });
    expect(resuming).toEqual(expect.objectContaining({ sessionTimeout: 300, requestCert: true, rejectUnauthorized: false }));
    expect(resuming.secureOptions).toBe(constants.SSL_OP_NO_RENEGOTIATION);
    expect(tlsServerOptions({ cert: 'c', key: 'k' }).secureOptions).toBe(constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_NO_TICKET);
  });

  // RFC 9325 §3.5 leaves renegotiation allowed but asks for care; refusing it means a connection's
  // client certificate is its handshake's for good (client-certificate.ts reads it once), and no
  // client can make the server redo a handshake's work at will.
  it("refuses a client's TLS 1.2 renegotiation, which a permissive server allows", async () => {
    const control = await listen(createPlainTlsServer({ cert: rsaServer.certPem, key: rsaServer.keyPem }, (socket) => socket.resume()));
    const server = await moat(rsaServer);
    try {
      expect(await renegotiation(control.port)).toBe('renegotiated');
      expect(await renegotiation(server.port)).toBe('refused');
    } finally {
      await control.close();
      await server.close();
    }
  });

  it('ends a renegotiating connection itself where OpenSSL lets one start, whatever else listens for client errors', async () => {
    const withoutOpenSslRefusal = createHttpsTlsServer(
      { ...tlsServerOptions({ cert: rsaServer.certPem, key: rsaServer.keyPem }), secureOptions: 0 },
      (_req, res) => res.end('ok'),
    );
    // A 'clientError' listener that only logs: node's HTTP server no longer destroys the socket itself.
    withoutOpenSslRefusal.on('clientError', () => {});
    refuseRenegotiation(withoutOpenSslRefusal);
    const server = await listen(withoutOpenSslRefusal);
    try {
      expect(await renegotiation(server.port)).toBe('refused');
    } finally {
      await server.close();
    }
  });

  it('completes the handshake for a client without a certificate (a browser reaching the login page)', async () => {
    const server = await moat(ecdsaServer);
    try {
      expect(await handshake(server.port, {})).toMatch(/^ok /);
    } finally {
      await server.close();
    }
  });
});

describe('the plain HTTP listener for gateway mode', () => {
  it('serves HTTP without TLS', async () => {
    const server = await listen(createHttpServer((_req, res) => res.end('plain')));
    try {
      const body = await new Promise<string>((resolve, reject) => {
        httpRequest({ host: '127.0.0.1', port: server.port, path: '/' }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => {
            text += chunk.toString();
          });
          res.on('end', () => resolve(text));
        })
          .on('error', reject)
          .end();
      });
      expect(body).toBe('plain');
    } finally {
      await server.close();
    }
  });
});

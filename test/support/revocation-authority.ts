import { webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerOcsp, buildCrl } from '../../src/sandbox/ca-services.ts';
import { importSigningKey } from '../../src/sandbox/certificate-issuing.ts';
import * as x509 from '../../src/pki/x509.ts';

/*
 * A CA's revocation services on loopback, for tests: an OCSP responder (RFC 6960) and a CRL
 * distribution point (RFC 5280 §5), both signing with the CA's real key. A test revokes a serial,
 * takes a service down, or makes it answer with a key that is not the CA's.
 */

export interface RevocationAuthority {
  ocspUrl: string;
  crlUrl: string;
  revoke(serialHex: string): void;
  /** `down`: answered with HTTP 503; `forged`: signed by a key that is not the CA's. */
  set(service: 'ocsp' | 'crl', mode: 'up' | 'down' | 'forged'): void;
  requests: { ocsp: number; crl: number };
  close(): Promise<void>;
}

export async function startRevocationAuthority(caPem: { certPem: string; keyPem: string }): Promise<RevocationAuthority> {
  const ca = { certificate: new x509.X509Certificate(caPem.certPem), key: importSigningKey(caPem.keyPem) };
  const forger = ((await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair)
    .privateKey;
  const revoked = new Map<string, Date>();
  const modes: Record<'ocsp' | 'crl', 'up' | 'down' | 'forged'> = { ocsp: 'up', crl: 'up' };
  const requests = { ocsp: 0, crl: 0 };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const service = req.url === '/crl' ? 'crl' : req.url === '/ocsp' ? 'ocsp' : undefined;
      if (service === undefined) return void res.writeHead(404).end();
      requests[service] += 1;
      if (modes[service] === 'down') return void res.writeHead(503).end();
      const key = modes[service] === 'forged' ? forger : ca.key;
      const answer = service === 'crl' ? buildCrl(ca, revoked, key) : answerOcsp(ca, Buffer.concat(chunks), revoked, key);
      answer.then(
        (bytes) => {
          res.writeHead(200, { 'content-type': service === 'crl' ? 'application/pkix-crl' : 'application/ocsp-response' }).end(bytes);
        },
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    ocspUrl: `${base}/ocsp`,
    crlUrl: `${base}/crl`,
    revoke: (serialHex) => {
      revoked.set(serialHex.toLowerCase(), new Date());
    },
    set: (service, mode) => {
      modes[service] = mode;
    },
    requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

import type { webcrypto } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { importSigningKey } from '../../src/sandbox/pki.ts';
import * as x509 from '../../src/tls/x509.ts';

/*
 * A CA's revocation services on loopback, for tests: an OCSP responder (RFC 6960) and a CRL
 * distribution point (RFC 5280 §5), both signing with the CA's real key. A test revokes a serial,
 * takes a service down, or makes it answer with a key that is not the CA's.
 */

export interface RevocationAuthority {
  ocspUrl: string;
  crlUrl: string;
  revoke(serialHex: string): void;
  /** `down`: connections are answered with HTTP 503; `forged`: responses signed by another key. */
  set(service: 'ocsp' | 'crl', mode: 'up' | 'down' | 'forged'): void;
  requests: { ocsp: number; crl: number };
  close(): Promise<void>;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const crypto = new pkijs.CryptoEngine({ name: 'node', crypto: globalThis.crypto });

export async function startRevocationAuthority(ca: { certPem: string; keyPem: string }): Promise<RevocationAuthority> {
  const caKey = importSigningKey(ca.keyPem);
  const caCert = new x509.X509Certificate(ca.certPem);
  const pkCa = pkijs.Certificate.fromBER(caCert.rawData);
  const forger = await globalThis.crypto.subtle.generateKey(EC, false, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const revoked = new Map<string, Date>();
  const modes = { ocsp: 'up', crl: 'up' } as Record<'ocsp' | 'crl', 'up' | 'down' | 'forged'>;
  const requests = { ocsp: 0, crl: 0 };

  const crl = async () => {
    const gen = await x509.X509CrlGenerator.create({
      issuer: caCert.subject,
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate: new Date(Date.now() + 3_600_000),
      entries: [...revoked].map(([serialNumber, revocationDate]) => ({ serialNumber, revocationDate, reason: x509.X509CrlReason.keyCompromise })),
      signingKey: modes.crl === 'forged' ? forger.privateKey : caKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    return Buffer.from(gen.rawData);
  };

  const ocsp = async (body: Buffer) => {
    const request = pkijs.OCSPRequest.fromBER(body);
    const certId = request.tbsRequest.requestList[0]!.reqCert;
    const serial = Buffer.from(certId.serialNumber.valueBlock.valueHexView).toString('hex').replace(/^0+/, '');
    const basic = new pkijs.BasicOCSPResponse();
    basic.tbsResponseData.responderID = pkCa.subject;
    basic.tbsResponseData.producedAt = new Date();
    const revokedAt = [...revoked].find(([s]) => s.replace(/^0+/, '') === serial)?.[1];
    const single = new pkijs.SingleResponse({
      certID: certId,
      certStatus: revokedAt === undefined
        ? new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 }, lenBlock: { length: 0 } } as never)
        : new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value: [new asn1js.GeneralizedTime({ valueDate: revokedAt })] }),
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate: new Date(Date.now() + 3_600_000),
    });
    basic.tbsResponseData.responses.push(single);
    await basic.sign(modes.ocsp === 'forged' ? forger.privateKey : caKey, 'SHA-256', crypto);
    const response = new pkijs.OCSPResponse({
      responseStatus: new asn1js.Enumerated({ value: 0 }),
      responseBytes: new pkijs.ResponseBytes({ responseType: '1.3.6.1.5.5.7.48.1.1', response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER() }) }),
    });
    return Buffer.from(response.toSchema().toBER());
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const service = req.url === '/crl' ? 'crl' : req.url === '/ocsp' ? 'ocsp' : undefined;
      if (service === undefined) return void res.writeHead(404).end();
      requests[service] += 1;
      if (modes[service] === 'down') return void res.writeHead(503).end();
      const answer = service === 'crl' ? crl() : ocsp(Buffer.concat(chunks));
      answer.then((bytes) => {
        res.writeHead(200, { 'content-type': service === 'crl' ? 'application/pkix-crl' : 'application/ocsp-response' }).end(bytes);
      }, (err: unknown) => res.writeHead(500).end(String(err)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    ocspUrl: `${base}/ocsp`,
    crlUrl: `${base}/crl`,
    revoke: (serialHex) => { revoked.set(serialHex.toLowerCase(), new Date()); },
    set: (service, mode) => { modes[service] = mode; },
    requests,
    close: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}

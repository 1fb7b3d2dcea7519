import { connect as connectTcp } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as connectTls } from 'node:tls';
import { distinguishedNameFromDer, type DistinguishedName } from '../../pki/distinguished-name.ts';
import type { Endpoint } from './server-connection.ts';

/*
 * The CAs a server names in its TLS CertificateRequest (RFC 5246 §7.4.4 certificate_authorities):
 * the trust anchors it accepts client certificates under. node does not expose the list, so a TLS
 * 1.2 handshake is made through a stream that keeps a copy of what the server sends; up to the
 * server's ChangeCipherSpec that is plaintext, CertificateRequest included. (In TLS 1.3 the same
 * list is encrypted.) Moat fills the list from its trust anchors (https-server.ts `ca`).
 */

/** TLS record content types and handshake message types (RFC 5246 §6.2.1, §7.4). */
const CHANGE_CIPHER_SPEC = 20;
const HANDSHAKE = 22;
const CERTIFICATE_REQUEST = 13;

/**
 * The CA names of the server's CertificateRequest; an empty list when it names none; undefined
 * when they cannot be learned (no TLS 1.2, no CertificateRequest, an unreadable answer).
 */
export function acceptableCaNames(endpoint: Endpoint, timeoutMs: number): Promise<DistinguishedName[] | undefined> {
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    const tcp = connectTcp({ host: endpoint.host, port: endpoint.port });
    const tap = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        tcp.write(chunk, done);
      },
      final(done) {
        tcp.end();
        done();
      },
    });
    tcp.on('data', (d: Buffer) => {
      received.push(d);
      tap.push(d);
    });
    tcp.on('end', () => tap.push(null));
    tcp.on('error', () => finish());
    // No client certificate: the request is read, not answered. Trust is not the question here.
    const tls = connectTls({
      socket: tap,
      maxVersion: 'TLSv1.2',
      rejectUnauthorized: false,
      ...(endpoint.servername === undefined ? {} : { servername: endpoint.servername }),
    });
    let done = false;
    const timer = setTimeout(() => finish(), timeoutMs);
    function finish(): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      tls.destroy();
      tcp.destroy();
      try {
        resolve(certificateAuthorities(Buffer.concat(received)));
      } catch {
        resolve(undefined);
      }
    }
    tls.once('secureConnect', finish);
    tls.once('error', finish);
  });
}

/** Reads the CertificateRequest out of the server's plaintext handshake records. */
function certificateAuthorities(bytes: Buffer): DistinguishedName[] | undefined {
  const fragments: Buffer[] = [];
  for (let at = 0; at + 5 <= bytes.length; ) {
    const type = bytes[at]!;
    const length = bytes.readUInt16BE(at + 3);
    if (type === CHANGE_CIPHER_SPEC) break;
    if (type === HANDSHAKE) fragments.push(bytes.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  const messages = Buffer.concat(fragments);
  for (let at = 0; at + 4 <= messages.length; ) {
    const type = messages[at]!;
    const length = messages.readUIntBE(at + 1, 3);
    if (type === CERTIFICATE_REQUEST) return caNamesOf(messages.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return undefined;
}

/** RFC 5246 §7.4.4: certificate_types<1..2^8-1>, supported_signature_algorithms<2..2^16-2>, certificate_authorities<0..2^16-1>. */
function caNamesOf(body: Buffer): DistinguishedName[] {
  let at = 1 + body[0]!;
  at += 2 + body.readUInt16BE(at);
  const end = at + 2 + body.readUInt16BE(at);
  at += 2;
  const names: DistinguishedName[] = [];
  while (at + 2 <= end) {
    const length = body.readUInt16BE(at);
    names.push(distinguishedNameFromDer(body.subarray(at + 2, at + 2 + length)));
    at += 2 + length;
  }
  return names;
}

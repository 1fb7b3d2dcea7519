import { createServer as createPlainServer, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer, type ServerOptions } from 'node:https';

/**
 * BCP 195 (RFC 9325 §4.2) for TLS 1.2, as FAPI 2.0 SP §5.2.1 requires: ECDHE key exchange with
 * AEAD ciphers only. TLS 1.3 suites are all acceptable and left at OpenSSL's defaults.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export function tlsServerOptions(options: { cert: string | Buffer; key: string | Buffer; ca?: string }): ServerOptions {
  return {
    cert: options.cert,
    key: options.key,
    ...(options.ca === undefined || options.ca === '' ? {} : { ca: options.ca }),
    minVersion: 'TLSv1.2',
    ciphers: TLS12_CIPHERS,
    honorCipherOrder: true,
    // Ask for the client certificate but let the handshake finish without one, so browsers reach
    // the login pages; each endpoint decides what a missing or untrusted certificate means.
    requestCert: true,
    rejectUnauthorized: false,
  };
}

export function createHttpsServer(options: { cert: string | Buffer; key: string | Buffer; ca?: string; handler: RequestListener }): Server {
  return createTlsServer(tlsServerOptions(options), options.handler);
}

/** Behind an mTLS-terminating gateway Moat speaks plain HTTP on a private network. */
export function createHttpServer(handler: RequestListener): Server {
  return createPlainServer(handler);
}

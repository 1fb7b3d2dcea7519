import { constants } from 'node:crypto';
import { createServer as createPlainServer, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer, type ServerOptions } from 'node:https';
import type { Server as TlsServer, TLSSocket } from 'node:tls';

/*
 * Moat's listeners. By default Moat terminates TLS itself and asks for the client certificate in
 * the handshake (RFC 8705 §2); behind an mTLS-terminating gateway it speaks plain HTTP and reads
 * the certificate from the gateway's header (client-certificate.ts).
 */

/**
 * TLS 1.2 cipher suites: BCP 195 (RFC 9325 §4.2) as FAPI 2.0 SP §5.2.1 requires, i.e. ephemeral
 * ECDH key exchange (forward secrecy) with an AEAD cipher only: no RSA key transport, no CBC, no
 * finite-field DHE. TLS 1.3 suites (all AEAD with (EC)DHE) are OpenSSL's defaults, which this list
 * does not touch since it names no `TLS_*` suite.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * A CRL issued by no CA Moat trusts (issuer `O=Moat, CN=Placeholder CRL of no CA`, no entries, its
 * signing key discarded). Why it exists: node hands over the intermediates a client sent
 * (`getPeerCertificate(true)`, `X509Certificate.issuerCertificate`) only when OpenSSL's own check of
 * the chain *failed*; when it succeeds against `ca`, node reports the leaf alone and Moat's
 * policy (certificate-chain.ts) cannot see a path through an intermediate. Supplying any CRL turns
 * on OpenSSL's CRL checking (X509_V_FLAG_CRL_CHECK | CRL_CHECK_ALL), which with no CRL for any real
 * CA ends every verification in UNABLE_TO_GET_CRL: OpenSSL's verdict is never "authorized", node
 * always exposes the whole chain, and `ca` still names the accepted CAs in the CertificateRequest.
 * This is safe only because the verdict is not used (`rejectUnauthorized: false`); the test
 * "trusts a certificate issued through an intermediate the client sends" guards it.
 */
const PLACEHOLDER_CRL = `-----BEGIN X509 CRL-----
MIG5MGECAQEwCgYIKoZIzj0EAwIwMjENMAsGA1UEChMETW9hdDEhMB8GA1UEAxMY
UGxhY2Vob2xkZXIgQ1JMIG9mIG5vIENBFw0yNTAxMDEwMDAwMDBaFw0yNTAxMDIw
MDAwMDBaMAoGCCqGSM49BAMCA0gAMEUCIF3slALJ/QwHrpOcevFxnyYp9DsKBUtU
0SXDYJVQZRK9AiEAtJRHYALeSIVZ6HW3PgsiJ0XbZfDhh8f3elUG5eqf2gI=
-----END X509 CRL-----
`;

/** The server's own certificate and key (PEM), and the trust anchors' PEM for the CA list. */
export interface TlsServerMaterial {
  cert: string | Buffer;
  key: string | Buffer;
  /** Trust anchors (`TrustAnchors.pem`), sent in the CertificateRequest so clients pick the right certificate. */
  ca?: string;
  /**
   * Resume sessions for this long after their last handshake, in seconds (TLS `sessionTimeout`);
   * only on a listener whose certificate resolver reads the chains of `session-chains.ts`, which
   * must be attached to it. Unset: every handshake is full.
   */
  sessionLifetimeSeconds?: number;
}

/** Node TLS options for Moat's HTTPS listener. */
export function tlsServerOptions(options: TlsServerMaterial): ServerOptions {
  return {
    cert: options.cert,
    key: options.key,
    ...(options.ca === undefined || options.ca === '' ? {} : { ca: options.ca }),
    // FAPI 2.0 SP §5.2.1 and RFC 9325 §3.1.1: TLS 1.2 or later only.
    minVersion: 'TLSv1.2',
    ciphers: TLS12_CIPHERS,
    // The server's order, strongest first, rather than whatever a client prefers.
    honorCipherOrder: true,
    // Ask for the client certificate but let the handshake finish without one (or with one that
    // does not chain), so browsers reach the login and consent pages; each endpoint decides what a
    // missing or untrusted certificate means, through the one policy in certificate-chain.ts.
    requestCert: true,
    rejectUnauthorized: false,
    crl: PLACEHOLDER_CRL,
    // SSL_OP_NO_RENEGOTIATION: no TLS 1.2 renegotiation (TLS 1.3 has none); see refuseRenegotiation.
    // OpenSSL still sends RFC 5746's renegotiation_info with it, as RFC 9325 §3.5 asks of TLS 1.2
    // (`openssl s_client -tls1_2`: "Secure Renegotiation IS supported").
    ...(options.sessionLifetimeSeconds === undefined
      ? {
          // No session resumption: a resumed session carries the client's leaf certificate but not
          // the intermediates it sent, so without session-chains.ts its chain could not be verified
          // again. Every connection is a full handshake (no tickets, no session cache).
          secureOptions: constants.SSL_OP_NO_RENEGOTIATION | constants.SSL_OP_NO_TICKET,
          sessionTimeout: 0,
        }
      : // Stateless tickets only (RFC 8446 §4.6.1, RFC 5077): the session state travels with the client
        // and the ticket keys are set by session-chains.ts; node keeps no server-side session cache.
        { secureOptions: constants.SSL_OP_NO_RENEGOTIATION, sessionTimeout: options.sessionLifetimeSeconds }),
  };
}

/** Options of `createHttpsServer`. */
export interface HttpsServerOptions extends TlsServerMaterial {
  handler: RequestListener;
}

/** The HTTPS server Moat listens with when it terminates TLS; the caller calls `listen`. */
export function createHttpsServer(options: HttpsServerOptions): Server {
  const server = createTlsServer(tlsServerOptions(options), options.handler);
  refuseRenegotiation(server);
  return server;
}

const peerFixed = new WeakSet<TLSSocket>();

/**
 * Every connection of `server` refuses TLS 1.2 renegotiation (TLS 1.3 has none). So a connection's
 * client certificate is the one of its handshake for as long as it lasts, and client-certificate.ts
 * reads and verifies it once per connection instead of on every request; nor can a client make the
 * server redo a handshake's work at will (node otherwise allows three renegotiations every ten
 * minutes). OpenSSL refuses it first (SSL_OP_NO_RENEGOTIATION in tlsServerOptions); should one
 * start anyway (a listener built with other options), node stops it and the connection is ended
 * here, not left to whether the HTTP server has a 'clientError' listener.
 */
export function refuseRenegotiation(server: TlsServer): void {
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.disableRenegotiation();
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ERR_TLS_RENEGOTIATION_DISABLED') socket.destroy();
    });
    peerFixed.add(socket);
  });
}

/** Whether `socket`'s client certificate cannot change: its listener refuses renegotiation. */
export function peerCertificateIsFixed(socket: TLSSocket): boolean {
  return peerFixed.has(socket);
}

/**
 * The plain HTTP server for gateway mode (`tls.terminate: false`): the gateway terminates TLS and
 * forwards the client certificate in a header believed only from `trustedProxies.addresses`.
 */
export function createHttpServer(handler: RequestListener): Server {
  return createPlainServer(handler);
}

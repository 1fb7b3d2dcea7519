import { Pool } from 'undici';

/*
 * undici connection pools that speak TLS to a benchmark server: trusting the sandbox server CA and,
 * for a TPP or a resource server, presenting its transport certificate (mutual TLS). Keep-alive by
 * default; a request sent with `reset: true` closes its connection after the response, so the next
 * one on that slot makes a new handshake (offering the cached session when `resumeSessions`).
 */

/** A client certificate and its key, PEM. */
export interface TlsIdentity {
  certPem: string;
  keyPem: string;
}

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

export interface PoolOptions {
  origin: string;
  serverCaPem: string;
  identity?: TlsIdentity;
  /** Connections the pool keeps; the load generator runs as many requests at once. */
  connections: number;
  /** Pin the TLS version; otherwise 1.2 or 1.3 as negotiated (1.3 between two current nodes). */
  tlsVersion?: TlsVersion;
  /** Offer cached TLS sessions on new connections (undici's default is to cache 100). */
  resumeSessions?: boolean;
}

export function createTlsPool(options: PoolOptions): Pool {
  return new Pool(options.origin, {
    connections: options.connections,
    pipelining: 1,
    connect: {
      ca: options.serverCaPem,
      ...(options.identity === undefined ? {} : { cert: options.identity.certPem, key: options.identity.keyPem }),
      ...(options.tlsVersion === undefined ? {} : { minVersion: options.tlsVersion, maxVersion: options.tlsVersion }),
      maxCachedSessions: options.resumeSessions === false ? 0 : 100,
    },
  });
}

import { readFileSync } from 'node:fs';
import type { RequestListener, Server } from 'node:http';
import { createServer, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import type { Server as TlsServer } from 'node:tls';
import { tlsServerOptions } from '../../src/tls/https-server.ts';
import { createSessionChains } from '../../src/tls/session-chains.ts';
import type { BenchServer } from './bench-server.ts';

/*
 * The raw floors: bare node https servers answering "ok", with the sandbox server certificate and
 * the client certificate requested against the sandbox TPP CA, as Moat does. `moatTls` has Moat's
 * TLS options without session resumption (every handshake full, as on the admin and gateway-check
 * listeners); `moatTlsResumed` exactly those of Moat's public listener, session tickets and the
 * remembered chains (tls/session-chains.ts) included; `defaultTls` node's defaults, which resume
 * sessions too (TLS 1.2 tickets, TLS 1.3 PSK).
 */

const ok: RequestListener = (req, res) => {
  // Read the body (a token request's form) so the floor does what a real request makes it do.
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
    res.end('ok');
  });
};

function listen(options: ServerOptions): Promise<Server> {
  const server = createServer(options, ok);
  return new Promise((listening, failed) => {
    server.once('error', failed);
    server.listen(0, '127.0.0.1', () => listening(server));
  });
}

export async function startFloors(dataDir: string): Promise<BenchServer> {
  const sandbox = await ensureSandboxMaterial(dataDir);
  const material = { cert: readFileSync(sandbox.serverCertFile), key: readFileSync(sandbox.serverKeyFile), ca: sandbox.tppCaPem };
  const moatTls = await listen(tlsServerOptions(material));
  // Moat's defaults (config/schema.ts tls.sessionResumption): 300 s sessions, keys replaced hourly.
  const sessionChains = createSessionChains({ lifetimeSeconds: 300, ticketKeyRotationSeconds: 3600 });
  const moatTlsResumed = await listen(tlsServerOptions({ ...material, sessionLifetimeSeconds: 300 }));
  sessionChains.attach(moatTlsResumed as unknown as TlsServer);
  const defaultTls = await listen({ ...material, requestCert: true, rejectUnauthorized: false });
  const portOf = (server: Server) => (server.address() as AddressInfo).port;
  return {
    ports: { moatTls: portOf(moatTls), moatTlsResumed: portOf(moatTlsResumed), defaultTls: portOf(defaultTls) },
    listeners: [moatTls, moatTlsResumed, defaultTls],
    close: async () => {
      sessionChains.detach();
      for (const server of [moatTls, moatTlsResumed, defaultTls]) {
        await new Promise<void>((closed) => {
          server.close(() => closed());
          server.closeAllConnections();
        });
      }
    },
  };
}

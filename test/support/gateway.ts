import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ensureSandboxMaterial } from '../../src/sandbox/sandbox-material.ts';
import { readFileSync } from 'node:fs';

/**
 * A minimal mTLS-terminating gateway, as nginx is configured in deploy/nginx/moat.conf: it asks for
 * the client certificate, overwrites X-SSL-Client-Cert with the escaped PEM it saw (or nothing),
 * and proxies to Moat over plain HTTP on loopback.
 */
export async function startGateway(dataDir: string, upstreamPort: number, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const material = await ensureSandboxMaterial(dataDir);
  const server: Server = createServer(
    {
      cert: readFileSync(material.serverCertFile),
      key: readFileSync(material.serverKeyFile),
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerX509Certificate();
      const headers = { ...req.headers, 'x-forwarded-proto': 'https' } as Record<string, string | string[] | undefined>;
      delete headers['x-ssl-client-cert'];
      if (peer !== undefined) headers['x-ssl-client-cert'] = encodeURIComponent(peer.toString());
      const upstream = httpRequest({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => {
        res.statusCode = 502;
        res.end();
      });
      req.pipe(upstream);
    },
  );
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

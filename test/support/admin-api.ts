import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/*
 * A call to the admin listener as an operator's tooling makes it: plain HTTP, or HTTPS trusting the
 * listener's CA and presenting an operator certificate; with the admin token or without.
 */

export interface AdminCall {
  token?: string;
  body?: unknown;
  /** A body sent as it is, with `headers` saying its type (a browser's text/plain POST, say). */
  rawBody?: string;
  /** More headers, or others than Node would send (Host, Origin, Content-Type). */
  headers?: Record<string, string>;
  /** For an `admin.tls` listener: the CA of its certificate, and the operator's certificate if any. */
  tls?: { ca: string; cert?: string; key?: string };
}

export function adminRequest(port: number, method: 'GET' | 'POST', path: string, call: AdminCall = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = call.rawBody ?? (call.body === undefined ? undefined : JSON.stringify(call.body));
    const options = {
      host: '127.0.0.1',
      port,
      path,
      method,
      headers: {
        ...(call.token === undefined ? {} : { authorization: `Bearer ${call.token}` }),
        ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        ...call.headers,
      },
    };
    const onResponse = (res: IncomingMessage) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) }));
    };
    // A fresh connection per call over TLS: each call's certificate is judged on its own handshake.
    const req =
      call.tls === undefined ? httpRequest(options, onResponse) : httpsRequest({ ...options, ...call.tls, servername: 'localhost', agent: false }, onResponse);
    req.on('error', reject);
    req.end(payload);
  });
}

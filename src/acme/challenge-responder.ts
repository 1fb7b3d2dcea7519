import { createServer, type Server } from 'node:http';
import { listenOn } from '../http/listen.ts';

/*
 * The http-01 responder (RFC 8555 §8.3): a plain-HTTP listener of its own that answers
 * `GET /.well-known/acme-challenge/<token>` with the key authorization while an order is pending,
 * and 404 to everything else. It serves nothing of Moat, so exposing it on port 80 to the CA
 * exposes nothing but the tokens of orders in flight (which are public by design).
 */

export interface ChallengeResponder {
  set(token: string, keyAuthorization: string): void;
  remove(token: string): void;
  /** Binds `acme.http01.host`/`port`; resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

const CHALLENGE_PATH = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/;

export function createChallengeResponder(): ChallengeResponder {
  const answers = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const token = req.method === 'GET' ? CHALLENGE_PATH.exec(req.url ?? '')?.[1] : undefined;
    const answer = token === undefined ? undefined : answers.get(token);
    if (answer === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    // §8.3: the body is the key authorization; application/octet-stream is what the CA expects.
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(answer);
  });
  return {
    set: (token, keyAuthorization) => void answers.set(token, keyAuthorization),
    remove: (token) => void answers.delete(token),
    listen: (host, port) => listenOn(server, 'acme.http01', host, port),
    close: () =>
      new Promise<void>((done) => {
        if (!server.listening) return done();
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server, Socket } from 'node:net';

/*
 * The connections a listener's close must end itself. Node's `closeIdleConnections` and
 * `closeAllConnections` reach only the connections its HTTP layer has registered, and on a TLS
 * listener that happens once a request arrives: a handshake in progress (or stalled on purpose) and a
 * connection whose handshake finished but that never sent a request are out of their reach, and
 * `server.close()` waits for them until the client leaves (node 24: a probe held one open for as
 * long as it liked). A SIGTERM drain would then never end, and one idle TLS connection is enough.
 * So every TCP connection is tracked from the moment it is accepted, and the ones that never carried a request
 * are ended at close: nothing was asked on them, so nothing is lost. Connections with a request keep
 * Node's draining (in flight, they finish; idle between requests, `closeIdleConnections` ends them),
 * and each closes after its answer instead of staying open for the next request (5 s, Node's
 * keep-alive timeout, that a stop waited for).
 */

/** Node's own default for `headersTimeout`. */
const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;

export interface ListenerConnections {
  /**
   * Ends the connections that never carried a request (handshakes in progress, TLS connections left
   * unused), and has each connection with a request in flight close once that request is answered
   * (`Connection: close`) rather than wait out the keep-alive timeout.
   */
  drain(): void;
  /** Ends every connection at once, requests in flight or not: a drain's deadline. */
  closeAll(): void;
}

/**
 * Starts tracking `server`'s connections; call before it listens. A connection that has carried no
 * request once the server's `headersTimeout` has passed (60 s unless set) is ended too, as nginx's
 * `client_header_timeout` ends one: Node starts that clock only at a request's first byte, so a TLS
 * connection that never sends one was otherwise held for good (a probe: still open after 200 s), and
 * a stalled handshake for the TLS layer's 120 s.
 */
export function trackConnections(server: Server & { headersTimeout?: number }): ListenerConnections {
  const open = new Set<Socket>();
  // By the peer's address and port, which the TCP socket and the TLS socket over it share (a TLS
  // listener's `request` names the TLS socket, its `connection` the TCP one under it).
  const unused = new Map<string, Socket>();
  const peerOf = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;

  server.on('connection', (socket: Socket) => {
    open.add(socket);
    const peer = peerOf(socket);
    unused.set(peer, socket);
    const unusedFor = setTimeout(() => {
      if (unused.get(peer) === socket) socket.destroy();
    }, server.headersTimeout || DEFAULT_HEADERS_TIMEOUT_MS);
    unusedFor.unref();
    socket.once('close', () => {
      clearTimeout(unusedFor);
      open.delete(socket);
      if (unused.get(peer) === socket) unused.delete(peer);
    });
  });
  const inFlight = new Set<ServerResponse>();
  let draining = false;
  const closeAfter = (res: ServerResponse) => {
    if (!res.headersSent) res.setHeader('Connection', 'close');
    else res.once('finish', () => res.socket?.end());
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    unused.delete(peerOf(req.socket));
    if (draining) closeAfter(res);
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
  });

  return {
    drain() {
      draining = true;
      for (const socket of unused.values()) socket.destroy();
      unused.clear();
      for (const res of inFlight) closeAfter(res);
    },
    closeAll() {
      for (const socket of open) socket.destroy();
    },
  };
}

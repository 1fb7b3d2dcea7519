import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server, Socket } from 'node:net';

/*
 * The connections a listener's close must end itself. On a TLS listener, a connection that never
 * carried a request — a handshake in progress or stalled, or a handshake finished and nothing asked —
 * was out of reach of Node's `closeIdleConnections` (node 24, probed: `server.close()` waited on it
 * for as long as the client liked, so a SIGTERM drain never ended), and a silent TLS connection
 * stayed open for good (still open after 200 s), a stalled handshake for the TLS layer's 120 s.
 * So every TCP connection is tracked from the moment it is accepted, and the ones that never carried
 * a request are ended at close: nothing was asked on them, so nothing is lost. Connections with a
 * request keep Node's draining (in flight, they finish; idle between requests, `closeIdleConnections`
 * ends them), and each closes once its last answer is sent instead of waiting out the keep-alive
 * timeout (5 s) for a next request that would be refused.
 */

/** Node's own default for `headersTimeout`. */
const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;

export interface ListenerConnections {
  /**
   * Ends the connections that never carried a request, and has each connection with requests in
   * flight close once they are answered (`Connection: close`, and the connection ended after the last).
   */
  drain(): void;
  /** Ends every connection at once, requests in flight or not: a drain's deadline. Returns how many it ended. */
  closeAll(): number;
}

/**
 * Starts tracking `server`'s connections; call before it listens. A connection that has carried no
 * request once the server's `headersTimeout` has passed (60 s unless set; 0 turns this off, as it
 * does Node's) is ended too, as nginx's `client_header_timeout` ends one.
 */
export function trackConnections(server: Server & { headersTimeout?: number }): ListenerConnections {
  const open = new Set<Socket>();
  // By both ends' addresses and ports, which the TCP socket and the TLS socket over it share (a TLS
  // listener's `request` names the TLS socket, its `connection` the TCP one under it).
  const unused = new Map<string, Socket>();
  const connectionOf = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;
  // The requests each connection has in flight (several when the client pipelines).
  const inFlight = new Map<Socket, Set<ServerResponse>>();
  let draining = false;

  server.on('connection', (socket: Socket) => {
    open.add(socket);
    const key = connectionOf(socket);
    unused.set(key, socket);
    const limit = server.headersTimeout ?? DEFAULT_HEADERS_TIMEOUT_MS;
    const unusedFor =
      limit > 0
        ? setTimeout(() => {
            if (unused.get(key) === socket) socket.destroy();
          }, limit).unref()
        : undefined;
    socket.once('close', () => {
      clearTimeout(unusedFor);
      open.delete(socket);
      if (unused.get(key) === socket) unused.delete(key);
    });
  });

  // First among the listeners, so a request is counted before the application can answer it.
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    let responses = inFlight.get(socket);
    if (responses === undefined) {
      unused.delete(connectionOf(socket));
      responses = new Set();
      inFlight.set(socket, responses);
      // Responses Node queued behind a connection that closed never emit 'close': dropped with it.
      socket.once('close', () => inFlight.delete(socket));
    }
    responses.add(res);
    if (draining) askToClose(res);
    res.once('close', () => {
      responses.delete(res);
      // The last answer sent while stopping: the connection ends after it (a FIN once it is
      // written). Also when the application removed the Connection header (Koa's error path does).
      if (draining && responses.size === 0) socket.end();
    });
  });

  return {
    drain() {
      draining = true;
      for (const socket of unused.values()) socket.destroy();
      unused.clear();
      for (const responses of inFlight.values()) for (const res of responses) askToClose(res);
    },
    closeAll() {
      const ended = open.size;
      for (const socket of open) socket.destroy();
      return ended;
    },
  };
}

/** Tells the client the connection closes after this answer, when its headers are not sent yet. */
function askToClose(res: ServerResponse): void {
  if (!res.headersSent) res.setHeader('Connection', 'close');
}

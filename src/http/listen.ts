import type { Server } from 'node:net';

/*
 * Binding a listener at start-up. A port that cannot be bound is an operator's problem to fix in
 * the configuration, so the error names the key to change rather than surfacing as a stack trace.
 */

/** Which listener: the public one (`listen.*`), the admin one (`admin.*`), the ACME challenge responder (`acme.http01.*`) or the gateway check (`gatewayCheck.*`). */
export type ListenerKey = 'listen' | 'admin' | 'acme.http01' | 'gatewayCheck';

export class ListenError extends Error {
  /** The system error code (EADDRINUSE, EACCES, EADDRNOTAVAIL…), kept for callers that retry. */
  readonly code: string | undefined;
  constructor(key: ListenerKey, host: string, port: number, cause: NodeJS.ErrnoException) {
    const env = `MOAT_${key.toUpperCase().replaceAll('.', '__')}__PORT`;
    const why =
      cause.code === 'EADDRINUSE'
        ? `is already in use (another Moat, or another program?); set ${key}.port (or ${env}) to a free port`
        : cause.code === 'EACCES'
          ? `needs privileges this process lacks; use a port above 1023 in ${key}.port (or ${env})`
          : cause.code === 'EADDRNOTAVAIL'
            ? `cannot be bound: ${key}.host ${host} is not an address of this machine`
            : `cannot be bound (${cause.code ?? cause.message})`;
    super(`${key}.port ${port} on ${host} ${why}`, { cause });
    this.name = 'ListenError';
    this.code = cause.code;
  }
}

/** Listens and resolves with the bound port (the one the system chose for port 0). */
export function listenOn(server: Server, key: ListenerKey, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => reject(new ListenError(key, host, port, err));
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve((server.address() as { port: number }).port);
    });
  });
}

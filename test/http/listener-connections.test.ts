import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { startMoat, type Harness } from '../support/moat-harness.ts';

/*
 * A Moat that stops (close(), and `moat start` on SIGTERM) ends the connections that never carried
 * a request: a client that opened TCP and sent nothing, one stalled in the middle of its ClientHello,
 * and one whose TLS handshake finished but that never asked anything. Node's own
 * closeIdleConnections cannot reach those on a TLS listener, and close() waited on them for as long
 * as the client liked (src/http/listener-connections.ts). A request in flight is still answered.
 */

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const closedByServer = (socket: Socket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    socket.once('close', () => resolve());
  });

async function openTcp(port: number): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

async function openTls(port: number): Promise<TLSSocket> {
  const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('secureConnect', resolve));
  return socket;
}

describe('a stopping Moat and the connections it holds', () => {
  it('ends a connection that sent nothing, one stalled mid-ClientHello and an idle TLS one, and closes', async () => {
    h = await startMoat();
    const silent = await openTcp(h.port);
    const stalled = await openTcp(h.port);
    // A TLS record header announcing a 255-byte handshake message, and one byte of it.
    stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01]));
    const idleTls = await openTls(h.port);
    const ended = [closedByServer(silent), closedByServer(stalled), closedByServer(idleTls)];

    // Without the tracking this waited until the clients left (never, here): the test's timeout.
    await h.close();
    h = undefined;
    await Promise.all(ended);
    expect([silent.destroyed, stalled.destroyed, idleTls.destroyed]).toEqual([true, true, true]);
  }, 20_000);

  it('still answers a request that is in flight when it starts to stop, then closes that connection', async () => {
    h = await startMoat();
    const harness = h;
    const socket = await openTls(harness.port);
    let response = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      response += chunk;
    });
    const body = 'grant_type=client_credentials&client_id=nobody';
    const received = new Promise((resolve) => harness.moat.server.once('request', resolve));
    // The headers and half of the body: the request is Moat's once its headers arrive.
    socket.write(
      `POST /token HTTP/1.1\r\nHost: localhost:${harness.port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
    );
    await received;
    const closing = harness.close();
    h = undefined;
    socket.write(body.slice(10));
    await closing;
    await closedByServer(socket);
    // Answered in full, as any token request without a client certificate is (RFC 8705 §2).
    expect(response).toMatch(/^HTTP\/1\.1 (400|401) /);
    // And the connection closes after it, instead of waiting for a next request that would be refused.
    expect(response.slice(0, response.indexOf('\r\n\r\n'))).toMatch(/\r\nConnection: close(\r\n|$)/i);
    expect(JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: expect.stringMatching(/^invalid_(client|request)$/) });
  }, 20_000);
});

describe('connections that never ask anything', () => {
  it("are ended once the listener's headersTimeout has passed, as a request's headers would be", async () => {
    h = await startMoat();
    // Node's own settings, on this real server: how long a request's headers may take, shortened;
    // how long a used connection is kept between requests, lengthened past this test.
    h.moat.server.headersTimeout = 5_000;
    h.moat.server.keepAliveTimeout = 60_000;
    const idleTls = await openTls(h.port);
    const stalled = await openTcp(h.port);
    stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01]));
    const used = await openTls(h.port);
    used.write(`GET /.well-known/openid-configuration HTTP/1.1\r\nHost: localhost:${h.port}\r\n\r\n`);
    await new Promise((resolve) => used.once('data', resolve));
    await Promise.all([closedByServer(idleTls), closedByServer(stalled)]);
    // A connection that asked something is Node's to time out (keepAliveTimeout), not this one's.
    expect(used.destroyed).toBe(false);
    used.destroy();
  }, 20_000);
});

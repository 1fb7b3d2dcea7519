import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import Koa from 'koa';
import { pino } from 'pino';
import { createAdminRequestGuard } from '../../src/admin/admin-request-guard.ts';

/*
 * The admin listener bound to every address (docker-compose, Kubernetes): Prometheus reaches each
 * replica by its own IP, and that address is a Host the listener answers to; a name it was not
 * given is refused as before.
 */

const lanAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && !a.internal && a.family === 'IPv4')?.address;

let server: Server;
let port: number;
beforeAll(async () => {
  const app = new Koa();
  app.use(createAdminRequestGuard({ host: '0.0.0.0', allowedHosts: [] }, pino({ level: 'silent' })));
  app.use((ctx) => {
    ctx.body = { ok: true };
  });
  server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

function get(address: string, host?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path: '/metrics', agent: false, ...(host === undefined ? {} : { headers: { host } }) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

(lanAddress === undefined ? it.skip : it)('answers to the address a request came in on, and to no other name', async () => {
  expect(await get(lanAddress!)).toBe(200);
  expect(await get(lanAddress!, `${lanAddress}:${port}`)).toBe(200);
  expect(await get(lanAddress!, `evil.example:${port}`)).toBe(421);
  // Loopback names stay allowed; 0.0.0.0 itself is no name to answer to.
  expect(await get('127.0.0.1')).toBe(200);
  expect(await get('127.0.0.1', `0.0.0.0:${port}`)).toBe(421);
  // An address of the host other than the one the connection came in on is not the listener's here.
  expect(await get('127.0.0.1', `${lanAddress}:${port}`)).toBe(421);
});

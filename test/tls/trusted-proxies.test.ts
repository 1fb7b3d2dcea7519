import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { addressBucket, createTrustedProxies } from '../../src/tls/trusted-proxies.ts';

/*
 * The client's address and scheme as Moat takes them (issue 14): from forwarded headers only when the
 * connection comes from a trusted proxy, over real loopback connections (the peer is 127.0.0.1).
 */

async function serve(
  trusted: string[],
): Promise<{ ask(headers: Record<string, string | string[]>): Promise<{ ip: string; scheme: string }>; close(): Promise<void> }> {
  const proxies = createTrustedProxies(trusted);
  const server: Server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ip: proxies.clientAddress(req), scheme: proxies.scheme(req) }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    ask: (headers) =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/', headers }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () => resolve(JSON.parse(body) as { ip: string; scheme: string }));
        });
        req.on('error', reject);
        req.end();
      }),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('a request from a trusted proxy', () => {
  let s: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    s = await serve(['127.0.0.1', '10.0.0.0/8', '2001:db8:ffff::/48']);
  });
  afterAll(() => s.close());

  it.each([
    ['no X-Forwarded-For: the proxy itself', {}, '127.0.0.1'],
    ['the address the gateway saw', { 'x-forwarded-for': '198.51.100.7' }, '198.51.100.7'],
    ['the rightmost address, not what the client wrote to its left', { 'x-forwarded-for': '203.0.113.9, 198.51.100.7' }, '198.51.100.7'],
    ['past every trusted proxy in the chain', { 'x-forwarded-for': '203.0.113.9, 198.51.100.7, 10.1.2.3, 127.0.0.1' }, '198.51.100.7'],
    ['several field lines as one list', { 'x-forwarded-for': ['203.0.113.9', '198.51.100.7, 10.1.2.3'] }, '198.51.100.7'],
    ['an IPv4-mapped IPv6 address as IPv4', { 'x-forwarded-for': '::ffff:198.51.100.7' }, '198.51.100.7'],
    ['IPv6, past a trusted IPv6 proxy', { 'x-forwarded-for': '2001:db8::1, 2001:db8:ffff::2' }, '2001:db8::1'],
    ['a malformed entry left of the client: ignored', { 'x-forwarded-for': 'unknown, 198.51.100.7' }, '198.51.100.7'],
    ['a malformed entry from a trusted hop: the last address vouched for', { 'x-forwarded-for': '198.51.100.7, bogus' }, '127.0.0.1'],
    ['only trusted proxies: the leftmost of them', { 'x-forwarded-for': '10.9.9.9, 10.1.2.3' }, '10.9.9.9'],
    ['an IPv4 address with a port', { 'x-forwarded-for': '198.51.100.7:5678' }, '198.51.100.7'],
    ['an IPv6 address in brackets with a port', { 'x-forwarded-for': '[2001:db8::1]:443' }, '2001:db8::1'],
    ['an IPv6 address in brackets', { 'x-forwarded-for': '[2001:db8::1]' }, '2001:db8::1'],
    [
      'past trusted proxies written with ports',
      { 'x-forwarded-for': '203.0.113.9, 198.51.100.7:41000, 10.1.2.3:8080, [2001:db8:ffff::2]:443' },
      '198.51.100.7',
    ],
  ])('takes its address from X-Forwarded-For: %s', async (_what, headers, ip) => {
    expect((await s.ask(headers)).ip).toBe(ip);
  });

  it('is https when it says so or says nothing, http when it says http', async () => {
    expect((await s.ask({})).scheme).toBe('https');
    expect((await s.ask({ 'x-forwarded-proto': 'HTTPS' })).scheme).toBe('https');
    expect((await s.ask({ 'x-forwarded-proto': 'http' })).scheme).toBe('http');
  });

  it('takes the X-Forwarded-Proto value the nearest proxy added (the last), not one a client wrote before it', async () => {
    expect((await s.ask({ 'x-forwarded-proto': 'https, http' })).scheme).toBe('http');
    expect((await s.ask({ 'x-forwarded-proto': ['http', 'https'] })).scheme).toBe('https');
  });
});

describe('a request from anyone else', () => {
  let s: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    s = await serve(['192.0.2.10']);
  });
  afterAll(() => s.close());

  it('has the address of its connection, whatever X-Forwarded-For says', async () => {
    expect(await s.ask({ 'x-forwarded-for': '198.51.100.7' })).toEqual({ ip: '127.0.0.1', scheme: 'http' });
  });

  it('is http on a plain connection, whatever X-Forwarded-Proto says', async () => {
    expect((await s.ask({ 'x-forwarded-proto': 'https' })).scheme).toBe('http');
  });
});

describe('the address a per-address counter counts (addressBucket)', () => {
  it.each([
    ['an IPv4 address: itself', '192.0.2.7', '192.0.2.7'],
    ['an IPv4-mapped IPv6 address: the IPv4 address', '::ffff:192.0.2.7', '192.0.2.7'],
    ['an IPv6 address: its /64', '2001:db8:14:1:abcd:ef01:2345:6789', '2001:db8:14:1::/64'],
    ['another address of the same /64: the same', '2001:DB8:14:1::1', '2001:db8:14:1::/64'],
    ['a compressed prefix', '2001:db8::1', '2001:db8:0:0::/64'],
    ['leading zeros and a zone', 'fe80:0000:0000:0000::1%eth0', 'fe80:0:0:0::/64'],
    ['the loopback address', '::1', '0:0:0:0::/64'],
    ['a dotted IPv4 tail', '64:ff9b::192.0.2.7', '64:ff9b:0:0::/64'],
  ])('%s', (_what, address, bucket) => {
    expect(addressBucket(address)).toBe(bucket);
  });
});

import { createServer, type Server } from 'node:https';
import { validateConfig } from '../../src/config/load.ts';
import { createHttpsNoticeDelivery, NoticeDeliveryError } from '../../src/certificates/notice-delivery.ts';
import { createOutboundTargetGuard } from '../../src/http/outbound-target-guard.ts';
import { problemsOf } from '../support/config-problems.ts';
import { createTestCa, issueLeaf } from '../support/pki.ts';

/*
 * The SSRF guard on the TPPs' notification endpoints (issue 21 point 3): in production a notice is
 * not posted to a loopback, private, link-local or otherwise non-public address unless the operator
 * allowed it (certificates.expiryNotices.allowedPrivateTargets); a name is checked at the address it
 * resolves to when the connection is made. A real HTTPS receiver on 127.0.0.1 stands in for the
 * target, and counts what reached it.
 */

let receiver: Server;
let port: number;
let caPem: string;
let hits = 0;

beforeAll(async () => {
  const ca = await createTestCa([{ CN: ['Guard Test CA'] }]);
  const leaf = await issueLeaf(ca, { subject: [{ CN: ['localhost'] }], eku: ['serverAuth'], san: { dns: ['localhost'], ip: ['127.0.0.1'] } });
  caPem = ca.certPem;
  receiver = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    hits += 1;
    req.resume();
    req.on('end', () => {
      res.statusCode = 202;
      res.end();
    });
  });
  await new Promise<void>((done) => receiver.listen(0, '127.0.0.1', done));
  port = (receiver.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise((done) => receiver.close(done));
});

describe('the outbound target guard', () => {
  const production = createOutboundTargetGuard({ allowPrivate: false, allowed: [] });

  it.each([
    ['127.0.0.1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.20.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'shared address space'],
    ['0.0.0.0', 'this network'],
    ['::1', 'loopback'],
    ['fd12::1', 'unique local'],
    ['fe80::1', 'link-local'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:a00:1', 'private'],
  ])('refuses %s (%s) in production', (address, what) => {
    expect(production.refusal(address)).toContain(what);
    expect(production.refusal(address)).toContain('certificates.expiryNotices.allowedPrivateTargets');
  });

  it.each(['8.8.8.8', '151.101.1.69', '2001:4860:4860::8888'])('lets the public address %s through', (address) => {
    expect(production.refusal(address)).toBeUndefined();
  });

  it('lets an allowed address or block through, and nothing else in the same range', () => {
    const guard = createOutboundTargetGuard({ allowPrivate: false, allowed: ['10.20.0.0/16', '127.0.0.1', 'fd00::/8'] });
    expect(guard.refusal('10.20.3.4')).toBeUndefined();
    expect(guard.refusal('127.0.0.1')).toBeUndefined();
    expect(guard.refusal('fd00::5')).toBeUndefined();
    expect(guard.refusal('10.21.0.1')).toContain('private');
    expect(guard.refusal('127.0.0.2')).toContain('loopback');
  });

  it('lets everything through in the sandbox', () => {
    expect(createOutboundTargetGuard({ allowPrivate: true, allowed: [] }).refusal('127.0.0.1')).toBeUndefined();
  });
});

describe('an expiry notice posted through the guard', () => {
  const post = (endpoint: string, allowed: string[] = [], allowPrivate = false) =>
    createHttpsNoticeDelivery({ timeoutMs: 2000, caPem, guard: createOutboundTargetGuard({ allowPrivate, allowed }) }).post(endpoint, 'a.b.c');

  it('is refused for an endpoint at a loopback address, without connecting, saying why', async () => {
    const before = hits;
    const attempt = post(`https://127.0.0.1:${port}/notices`);
    await expect(attempt).rejects.toThrow(NoticeDeliveryError);
    await expect(attempt).rejects.toThrow(/^refused: 127\.0\.0\.1 is not a public address \(loopback\)/);
    expect(hits).toBe(before);
  });

  it('is refused for a name that resolves to a loopback address, checked at the lookup', async () => {
    const before = hits;
    await expect(post(`https://localhost:${port}/notices`)).rejects.toThrow(
      /^refused: localhost resolves to (127\.0\.0\.1|::1) is not a public address \(loopback\)/,
    );
    expect(hits).toBe(before);
  });

  it('is delivered to an allowed private endpoint, by address and by name', async () => {
    const before = hits;
    await expect(post(`https://127.0.0.1:${port}/notices`, ['127.0.0.0/8', '::1'])).resolves.toBeUndefined();
    await expect(post(`https://localhost:${port}/notices`, ['127.0.0.0/8', '::1'])).resolves.toBeUndefined();
    expect(hits).toBe(before + 2);
  });

  it('is delivered to a local endpoint in the sandbox', async () => {
    await expect(post(`https://127.0.0.1:${port}/notices`, [], true)).resolves.toBeUndefined();
  });
});

describe('certificates.expiryNotices.allowedPrivateTargets', () => {
  const validate = (allowed: unknown[]) => validateConfig({ certificates: { expiryNotices: { allowedPrivateTargets: allowed } } }, 'test', '/tmp');

  it('takes addresses and CIDR blocks', () => {
    expect(validate(['10.20.0.0/16', '127.0.0.1', 'fd00::/8']).certificates.expiryNotices.allowedPrivateTargets).toEqual([
      '10.20.0.0/16',
      '127.0.0.1',
      'fd00::/8',
    ]);
  });

  it('names the entry that is not an address or a block', () => {
    expect(problemsOf(() => validate(['notices.bank.internal', '10.0.0.0/33']))).toEqual([
      expect.stringMatching(/^certificates\.expiryNotices\.allowedPrivateTargets\.0: expected an IP address or a CIDR block/),
      expect.stringMatching(/^certificates\.expiryNotices\.allowedPrivateTargets\.1: expected a prefix length of 0–32/),
    ]);
  });
});

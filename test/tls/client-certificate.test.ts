import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import { certificateThumbprint, loadTrustAnchors, type TrustAnchors } from '../../src/pki/certificate-chain.ts';
import {
  createClientCertificateResolver,
  type ClientCertificateOptions,
  type IgnoredHeader,
  type PresentedCertificate,
} from '../../src/tls/client-certificate.ts';
import { formatDistinguishedName } from '../../src/pki/distinguished-name.ts';
import { createHttpServer, createHttpsServer, tlsServerOptions } from '../../src/tls/https-server.ts';
import { createSessionChains, type SessionChains, type SessionChainsOptions } from '../../src/tls/session-chains.ts';
import { createProxyAllowList } from '../../src/tls/trusted-proxies.ts';
import { byteSequence, createIntermediateCa, createSelfSignedLeaf, createTestCa, issueLeaf, type TestCa, type TestCertificate } from '../support/pki.ts';

/*
 * What Moat learns about a request's client certificate (RFC 8705 §2), over real connections on
 * loopback: from the TLS handshake of Moat's own listener, or from a gateway's header on the plain
 * HTTP listener of gateway mode, believed only from trusted proxy addresses.
 */

const DAY = 86_400_000;
let dir: string;
let serverCa: TestCa;
let server: TestCertificate;
let tppRoot: TestCa;
let tppIssuing: TestCa;
let tpp: TestCertificate;
let tppViaIssuing: TestCertificate;
let anchors: TrustAnchors;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'moat-client-cert-'));
  serverCa = await createTestCa([{ CN: ['Server CA'] }]);
  server = await issueLeaf(serverCa, { subject: [{ CN: ['localhost'] }], eku: ['serverAuth'], san: { dns: ['localhost'], ip: ['127.0.0.1', '::1'] } });
  tppRoot = await createTestCa([{ C: ['GB'] }, { O: ['OpenBanking'] }, { CN: ['TPP Root CA'] }]);
  tppIssuing = await createIntermediateCa(tppRoot, [{ C: ['GB'] }, { O: ['OpenBanking'] }, { CN: ['TPP Issuing CA'] }]);
  tpp = await issueLeaf(tppRoot, { subject: [{ C: ['GB'] }, { O: ['OpenBanking'] }, { OU: ['org-1'] }, { CN: ['sw-1'] }] });
  tppViaIssuing = await issueLeaf(tppIssuing, { subject: [{ C: ['GB'] }, { O: ['OpenBanking'] }, { OU: ['org-2'] }, { CN: ['sw-2'] }] });
  writeFileSync(join(dir, 'anchors.pem'), tppRoot.certPem);
  anchors = loadTrustAnchors([join(dir, 'anchors.pem')]);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Harness {
  port: number;
  server: Server;
  /** The listener's remembered chains, when it resumes sessions. */
  sessionChains: SessionChains | undefined;
  /** What `resolve` returned, one entry per request. */
  seen: (PresentedCertificate | undefined)[];
  ignored: IgnoredHeader[];
  close(): Promise<void>;
}

/** Starts Moat's HTTPS listener (or, with `plain`, the gateway-mode HTTP one) with a resolver. */
async function start(
  options: Partial<ClientCertificateOptions> & { plain?: boolean; host?: string; resolveTimes?: number; resumption?: Partial<SessionChainsOptions> } = {},
): Promise<Harness> {
  const ignored: IgnoredHeader[] = [];
  const seen: (PresentedCertificate | undefined)[] = [];
  const sessionChains =
    options.resumption === undefined ? undefined : createSessionChains({ lifetimeSeconds: 300, ticketKeyRotationSeconds: 3600, ...options.resumption });
  const resolve = createClientCertificateResolver({
    ...(sessionChains === undefined ? {} : { sessionChains }),
    trustedProxies: [],
    format: 'rfc9440',
    anchors,
    onIgnoredHeader: (info) => ignored.push(info),
    ...options,
  });
  const handler = (req: IncomingMessage, res: import('node:http').ServerResponse) => {
    const answers = Array.from({ length: options.resolveTimes ?? 1 }, () => resolve(req));
    // Memoised: every call for one request returns the very same answer.
    expect(new Set(answers).size).toBe(1);
    seen.push(answers[0]);
    res.end('ok');
  };
  const srv: Server =
    options.plain === true
      ? createHttpServer(handler)
      : createHttpsServer({
          cert: server.certPem,
          key: server.keyPem,
          ca: anchors.pem,
          ...(sessionChains === undefined ? {} : { sessionLifetimeSeconds: 300 }),
          handler,
        });
  sessionChains?.attach(srv as unknown as TlsServer);
  await new Promise<void>((r) => srv.listen(0, options.host ?? '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    server: srv,
    sessionChains,
    seen,
    ignored,
    close: () =>
      new Promise<void>((r) => {
        sessionChains?.detach();
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

/** An HTTPS request presenting `cert` (with `chain` after it, as a client sends intermediates). */
function getTls(
  h: Harness,
  options: {
    cert?: TestCertificate;
    chain?: TestCertificate[];
    headers?: Record<string, string>;
    agent?: Agent;
    maxVersion?: 'TLSv1.2';
    /** A TLS session to offer for resumption. */
    session?: Buffer;
  } = {},
) {
  return new Promise<{ status: number; reused: boolean; session?: Buffer }>((resolve, reject) => {
    let session: Buffer | undefined;
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: h.port,
        path: '/',
        servername: 'localhost',
        ca: serverCa.certPem,
        agent: options.agent ?? false,
        headers: options.headers ?? {},
        ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
        ...(options.session === undefined ? {} : { session: options.session }),
        ...(options.cert === undefined
          ? {}
          : {
              cert: [options.cert, ...(options.chain ?? [])].map((c) => c.certPem).join(''),
              key: options.cert.keyPem,
            }),
      },
      (res) => {
        const reused = (res.socket as TLSSocket).isSessionReused();
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused, ...(session === undefined ? {} : { session }) }));
      },
    );
    req.on('socket', (socket) => socket.on('session', (s: Buffer) => (session = s)));
    req.on('error', reject);
    req.end();
  });
}

/** A plain HTTP request, as a gateway sends it to Moat in gateway mode. */
function getPlain(h: Harness, headers: Record<string, string | string[]>, host = '127.0.0.1') {
  return new Promise<number>((resolve, reject) => {
    const req = httpRequest({ host, port: h.port, path: '/', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function using<T>(h: Promise<Harness>, test: (h: Harness) => Promise<T>): Promise<T> {
  const harness = await h;
  try {
    return await test(harness);
  } finally {
    await harness.close();
  }
}

describe('the client certificate of the TLS handshake (RFC 8705 §2)', () => {
  it('is absent for a client without one, whose request still gets through', () =>
    using(start(), async (h) => {
      expect(await getTls(h)).toEqual(expect.objectContaining({ status: 200, reused: false }));
      expect(h.seen).toEqual([undefined]);
    }));

  it('is read with its subject, thumbprint and a trusted chain to the anchor', () =>
    using(start(), async (h) => {
      await getTls(h, { cert: tpp });
      const presented = h.seen[0]!;
      expect(presented.via).toBe('tls');
      expect(presented.certificate.raw.equals(tpp.certificate.raw)).toBe(true);
      expect(presented.thumbprint).toBe(certificateThumbprint(tpp.certificate));
      expect(formatDistinguishedName(presented.subject)).toBe('CN=sw-1, OU=org-1, O=OpenBanking, C=GB');
      expect(presented.verification.trusted && presented.verification.anchor.raw.equals(tppRoot.certificate.raw)).toBe(true);
    }));

  it('is trusted through an intermediate the client sends, which only the trust anchor vouches for', () =>
    using(start(), async (h) => {
      await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing] });
      const presented = h.seen[0]!;
      expect(presented.verification.trusted).toBe(true);
      expect(presented.chain.map((c) => c.subject)).toContain(tppIssuing.certificate.subject);
    }));

  it('is not trusted when the client leaves out its intermediate', () =>
    using(start(), async (h) => {
      await getTls(h, { cert: tppViaIssuing });
      expect(h.seen[0]?.verification).toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
    }));

  it('is verified again on every connection of a listener that does not resume sessions', () =>
    using(start(), async (h) => {
      const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
      try {
        const first = await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent });
        const second = await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent });
        expect([first.reused, second.reused]).toEqual([false, false]);
        expect(h.seen.map((p) => p?.verification.trusted)).toEqual([true, true]);
      } finally {
        agent.destroy();
      }
    }));

  it('is read but not trusted when self-signed, expired, or not for client authentication', () =>
    using(start(), async (h) => {
      const selfSigned = await createSelfSignedLeaf([{ CN: ['self-signed tpp'] }]);
      const expired = await issueLeaf(tppRoot, {
        subject: [{ CN: ['expired'] }],
        notBefore: new Date(Date.now() - 30 * DAY),
        notAfter: new Date(Date.now() - DAY),
      });
      const serverOnly = await issueLeaf(tppRoot, { subject: [{ CN: ['server only'] }], eku: ['serverAuth'] });
      for (const cert of [selfSigned, expired, serverOnly]) expect((await getTls(h, { cert })).status).toBe(200);
      expect(h.seen.map((p) => p?.verification.trusted === false && p.verification.reason)).toEqual(['untrusted-chain', 'expired', 'not-for-client-auth']);
    }));

  it('is checked against the injected clock', () =>
    using(start({ now: () => new Date(Date.now() + 20 * 365 * DAY) }), async (h) => {
      await getTls(h, { cert: tpp });
      expect(h.seen[0]?.verification).toEqual(expect.objectContaining({ trusted: false, reason: 'expired' }));
    }));

  it('is verified once per keep-alive connection, until the earliest expiry in its chain', async () => {
    const shortLived = await issueLeaf(tppRoot, {
      subject: [{ CN: ['short-lived'] }],
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + DAY),
    });
    let clock = Date.now();
    await using(start({ now: () => new Date(clock) }), async (h) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < 3; i += 1) await getTls(h, { cert: shortLived, agent });
        // One connection, three requests: the same verdict object, not three parses of the chain.
        expect(new Set(h.seen).size).toBe(1);
        expect(h.seen[0]?.verification.trusted).toBe(true);
        // Still the same connection, but the leaf has expired since: verified afresh, and refused.
        clock += 2 * DAY;
        await getTls(h, { cert: shortLived, agent });
        expect(h.seen[3]).not.toBe(h.seen[0]);
        expect(h.seen[3]?.verification).toEqual(expect.objectContaining({ trusted: false, reason: 'expired' }));
        // A new connection with another certificate gets its own verdict.
        await getTls(h, { cert: tpp });
        expect(h.seen[4]?.thumbprint).toBe(certificateThumbprint(tpp.certificate));
      } finally {
        agent.destroy();
      }
    });
  });

  it('keeps a trusted verdict across connections for the same certificate and intermediates, until the earliest expiry or new anchors', async () => {
    const shortLived = await issueLeaf(tppIssuing, {
      subject: [{ CN: ['short-lived across connections'] }],
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + DAY),
    });
    let clock = Date.now();
    const ownAnchors = loadTrustAnchors([join(dir, 'anchors.pem')]);
    await using(start({ anchors: ownAnchors, now: () => new Date(clock) }), async (h) => {
      const sent = { cert: shortLived, chain: [tppIssuing] };
      await getTls(h, sent);
      await getTls(h, sent);
      // Two connections, one verification: the very same verdict.
      expect(h.seen[1]).toBe(h.seen[0]);
      expect(h.seen[0]?.verification.trusted).toBe(true);
      // The same leaf without its intermediate is not the same question.
      await getTls(h, { cert: shortLived });
      expect(h.seen[2]?.verification).toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
      // Past the leaf's expiry: verified afresh, and refused.
      clock += 2 * DAY;
      await getTls(h, sent);
      expect(h.seen[3]?.verification).toEqual(expect.objectContaining({ trusted: false, reason: 'expired' }));
      // Reloaded anchors that no longer include the root: verified afresh, and refused.
      clock = Date.now();
      await getTls(h, sent);
      expect(h.seen[4]?.verification.trusted).toBe(true);
      const otherRoot = await createTestCa([{ CN: ['Another Root'] }]);
      writeFileSync(join(dir, 'other-anchors.pem'), otherRoot.certPem);
      Object.assign(ownAnchors, loadTrustAnchors([join(dir, 'other-anchors.pem')]));
      await getTls(h, sent);
      expect(h.seen[5]?.verification).toEqual(expect.objectContaining({ trusted: false, reason: 'untrusted-chain' }));
    });
  });

  it('is memoised per request', () =>
    using(start({ resolveTimes: 3 }), async (h) => {
      await getTls(h, { cert: tpp, headers: { 'client-cert': byteSequence(tpp) } });
      expect(h.seen).toHaveLength(1);
      expect(h.ignored).toHaveLength(1);
    }));
});

describe('the client certificate of a resumed TLS session (RFC 8446 §2.2, RFC 5077 tickets)', () => {
  const resuming = (options: Parameters<typeof start>[0] = {}) => start({ resumption: {}, ...options });
  const subjects = (h: Harness) => h.seen.map((p) => (p === undefined ? undefined : formatDistinguishedName(p.subject)));

  it.each([['TLSv1.3'], ['TLSv1.2']] as const)('is the full handshake certificate, trusted through the intermediate sent then (%s)', (version) =>
    using(resuming(), async (h) => {
      const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
      const maxVersion = version === 'TLSv1.2' ? { maxVersion: 'TLSv1.2' as const } : {};
      try {
        const first = await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent, ...maxVersion });
        const second = await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent, ...maxVersion });
        expect([first.reused, second.reused]).toEqual([false, true]);
        const resumed = h.seen[1]!;
        expect(resumed.thumbprint).toBe(certificateThumbprint(tppViaIssuing.certificate));
        expect(resumed.chain.map((c) => c.subject)).toEqual([tppIssuing.certificate.subject]);
        expect(resumed.verification.trusted && resumed.verification.anchor.raw.equals(tppRoot.certificate.raw)).toBe(true);
      } finally {
        agent.destroy();
      }
    }),
  );

  it('is verified again at resumption: a certificate that has expired since the full handshake is refused', async () => {
    const shortLived = await issueLeaf(tppIssuing, {
      subject: [{ CN: ['short-lived'] }],
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + DAY),
    });
    let clock = Date.now();
    await using(resuming({ now: () => new Date(clock) }), async (h) => {
      const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
      try {
        expect((await getTls(h, { cert: shortLived, chain: [tppIssuing], agent })).reused).toBe(false);
        clock += 2 * DAY;
        expect((await getTls(h, { cert: shortLived, chain: [tppIssuing], agent })).reused).toBe(true);
        expect(h.seen.map((p) => p?.verification.trusted === false && p.verification.reason)).toEqual([false, 'expired']);
      } finally {
        agent.destroy();
      }
    });
  });

  it("never takes another client's identity: interleaved resumptions each keep their own certificate and chain", () =>
    using(resuming(), async (h) => {
      const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
      try {
        const viaIssuing = { cert: tppViaIssuing, chain: [tppIssuing], agent };
        const direct = { cert: tpp, agent };
        const reused = [];
        for (const client of [viaIssuing, direct, viaIssuing, direct, viaIssuing]) reused.push((await getTls(h, client)).reused);
        expect(reused).toEqual([false, false, true, true, true]);
        const [sw2, sw1] = ['CN=sw-2, OU=org-2, O=OpenBanking, C=GB', 'CN=sw-1, OU=org-1, O=OpenBanking, C=GB'];
        expect(subjects(h)).toEqual([sw2, sw1, sw2, sw1, sw2]);
        expect(h.seen.map((p) => p?.verification.trusted)).toEqual([true, true, true, true, true]);
        expect(h.seen.map((p) => p?.chain.length)).toEqual([1, 0, 1, 0, 1]);
      } finally {
        agent.destroy();
      }
    }));

  it('is not resumed from a ticket of another listener (another instance or worker): a full handshake instead', async () => {
    const other = await resuming();
    try {
      await using(resuming(), async (h) => {
        const first = await getTls(other, { cert: tppViaIssuing, chain: [tppIssuing] });
        expect(first.session).toBeDefined();
        // The control: the same ticket does resume on the listener that issued it.
        expect((await getTls(other, { cert: tppViaIssuing, chain: [tppIssuing], session: first.session! })).reused).toBe(true);
        const elsewhere = await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], session: first.session! });
        expect(elsewhere.reused).toBe(false);
        expect(h.seen[0]?.verification.trusted).toBe(true);
      });
    } finally {
      await other.close();
    }
  });

  it('replaces the ticket keys before forgetting a chain a ticket may still need, so that client makes a full handshake', async () => {
    const replaced: string[] = [];
    await using(resuming({ resumption: { capacity: 1, onTicketKeysReplaced: (reason) => replaced.push(reason) } }), async (h) => {
      const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
      try {
        expect(replaced).toEqual(['schedule']);
        await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent });
        // A second certificate: the first one's chain must go, while its session is resumable.
        await getTls(h, { cert: tpp, agent });
        expect(replaced).toEqual(['schedule', 'eviction']);
        expect(h.sessionChains?.size).toBe(1);
        const again = await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent });
        expect(again.reused).toBe(false);
        expect(h.seen[2]?.verification.trusted).toBe(true);
      } finally {
        agent.destroy();
      }
    });
  });

  it("keeps a TPP's chain and its ticket keys through a flood of certificates that no request finds trusted", async () => {
    const replaced: string[] = [];
    const throwaway = await Promise.all([1, 2, 3].map((i) => createSelfSignedLeaf([{ CN: [`throwaway ${i}`] }])));
    await using(resuming({ resumption: { capacity: 2, onTicketKeysReplaced: (reason) => replaced.push(reason) } }), async (h) => {
      const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
      try {
        await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent });
        for (const cert of throwaway) await getTls(h, { cert });
        expect(replaced).toEqual(['schedule']);
        expect(h.sessionChains?.size).toBe(2);
        const again = await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent });
        expect(again.reused).toBe(true);
        expect(h.seen[4]?.verification.trusted).toBe(true);
      } finally {
        agent.destroy();
      }
    });
  });

  it("replaces node's default ticket keys, which node:cluster gives every worker alike, with the listener's own", () =>
    using(resuming(), async (h) => {
      const tls = h.server as unknown as TlsServer;
      const own = tls.getTicketKeys();
      const plain = createHttpsServer({ cert: server.certPem, key: server.keyPem, ca: anchors.pem, sessionLifetimeSeconds: 300, handler: () => {} });
      const before = (plain as unknown as TlsServer).getTicketKeys();
      const chains = createSessionChains({ lifetimeSeconds: 300, ticketKeyRotationSeconds: 3600 });
      chains.attach(plain as unknown as TlsServer);
      try {
        const after = (plain as unknown as TlsServer).getTicketKeys();
        expect(after.equals(before)).toBe(false);
        expect(after.equals(own)).toBe(false);
      } finally {
        chains.detach();
      }
    }));

  it('keeps resuming across a replaced TLS context (a renewed server certificate, reloaded trust anchors), whose own ticket keys it puts back', () =>
    using(resuming(), async (h) => {
      const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
      try {
        await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent });
        (h.server as unknown as TlsServer).setSecureContext(
          tlsServerOptions({ cert: server.certPem, key: server.keyPem, ca: anchors.pem, sessionLifetimeSeconds: 300 }),
        );
        h.sessionChains?.secureContextReplaced();
        expect((await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], agent })).reused).toBe(true);
        expect(h.seen[1]?.verification.trusted).toBe(true);
      } finally {
        agent.destroy();
      }
    }));
});

describe('a client certificate forwarded by a gateway (gateway mode)', () => {
  it('is taken from Client-Cert (RFC 9440) when the sender is a trusted proxy', () =>
    using(start({ plain: true, trustedProxies: ['127.0.0.1'] }), async (h) => {
      await getPlain(h, { 'client-cert': byteSequence(tpp) });
      expect(h.seen[0]).toEqual(expect.objectContaining({ via: 'forwarded', thumbprint: certificateThumbprint(tpp.certificate) }));
      expect(h.seen[0]?.verification.trusted).toBe(true);
      expect(h.ignored).toEqual([]);
    }));

  it('is trusted through the intermediate in Client-Cert-Chain', () =>
    using(start({ plain: true, trustedProxies: ['127.0.0.0/8'] }), async (h) => {
      await getPlain(h, { 'client-cert': byteSequence(tppViaIssuing), 'client-cert-chain': byteSequence(tppIssuing) });
      await getPlain(h, { 'client-cert': byteSequence(tppViaIssuing) });
      expect(h.seen.map((p) => p?.verification.trusted)).toEqual([true, false]);
    }));

  it('is taken from nginx X-SSL-Client-Cert and from Envoy XFCC in those formats', async () => {
    await using(start({ plain: true, trustedProxies: ['127.0.0.1'], format: 'nginx' }), async (h) => {
      await getPlain(h, { 'x-ssl-client-cert': encodeURIComponent(tpp.certPem) });
      expect(h.seen[0]?.verification.trusted).toBe(true);
    });
    await using(start({ plain: true, trustedProxies: ['127.0.0.1'], format: 'envoy-xfcc' }), async (h) => {
      await getPlain(h, {
        'x-forwarded-client-cert': `By=spiffe://edge;Hash=00,By=spiffe://gw;Hash=ab;Cert="${encodeURIComponent(tppViaIssuing.certPem)}";Chain="${encodeURIComponent(tppViaIssuing.certPem + tppIssuing.certPem)}";Subject="CN=sw-2,OU=org-2"`,
      });
      expect(h.seen[0]?.verification.trusted).toBe(true);
      expect(formatDistinguishedName(h.seen[0]!.subject)).toBe('CN=sw-2, OU=org-2, O=OpenBanking, C=GB');
    });
  });

  it('is absent, and nothing reported, when a trusted proxy forwards no certificate', () =>
    using(start({ plain: true, trustedProxies: ['127.0.0.1'] }), async (h) => {
      await getPlain(h, {});
      expect(h.seen).toEqual([undefined]);
      expect(h.ignored).toEqual([]);
    }));

  it('is ignored, and reported, when the sender is not a trusted proxy', () =>
    using(start({ plain: true, trustedProxies: ['10.0.0.0/8'] }), async (h) => {
      await getPlain(h, { 'client-cert': byteSequence(tpp), 'client-cert-chain': byteSequence(tppRoot) });
      expect(h.seen).toEqual([undefined]);
      expect(h.ignored).toEqual([
        { reason: 'untrusted-sender', remoteAddress: '127.0.0.1', header: 'client-cert' },
        { reason: 'untrusted-sender', remoteAddress: '127.0.0.1', header: 'client-cert-chain' },
      ]);
    }));

  it("is ignored in favour of the handshake's own certificate when a TLS client sends one", () =>
    using(start({ trustedProxies: ['10.0.0.0/8'], format: 'nginx' }), async (h) => {
      await getTls(h, { cert: tppViaIssuing, chain: [tppIssuing], headers: { 'x-ssl-client-cert': encodeURIComponent(tpp.certPem) } });
      expect(h.seen[0]?.via).toBe('tls');
      expect(h.seen[0]?.certificate.raw.equals(tppViaIssuing.certificate.raw)).toBe(true);
      expect(h.ignored).toEqual([{ reason: 'untrusted-sender', remoteAddress: '127.0.0.1', header: 'x-ssl-client-cert' }]);
    }));

  it('is treated as absent, and reported, when a trusted proxy sends it malformed', () =>
    using(start({ plain: true, trustedProxies: ['127.0.0.1'] }), async (h) => {
      await getPlain(h, { 'client-cert': 'not a byte sequence' });
      await getPlain(h, { 'client-cert': [byteSequence(tpp), byteSequence(tppViaIssuing)] });
      expect(h.seen).toEqual([undefined, undefined]);
      expect(h.ignored).toEqual([
        {
          reason: 'malformed',
          remoteAddress: '127.0.0.1',
          header: 'client-cert',
          detail: 'Client-Cert is not a Structured Field Byte Sequence (RFC 9440 §2.2)',
        },
        { reason: 'malformed', remoteAddress: '127.0.0.1', header: 'client-cert', detail: 'client-cert appears more than once' },
      ]);
    }));

  it('is honoured from an IPv4 client of a dual-stack listener (::ffff:127.0.0.1) when 127.0.0.1 is trusted', () =>
    using(start({ plain: true, host: '::', trustedProxies: ['127.0.0.1'] }), async (h) => {
      await getPlain(h, { 'client-cert': byteSequence(tpp) });
      expect(h.seen[0]?.via).toBe('forwarded');
    }));

  it('is reported with the IPv4 form of an IPv4-mapped sender address', () =>
    using(start({ plain: true, host: '::', trustedProxies: ['10.0.0.0/8'] }), async (h) => {
      await getPlain(h, { 'client-cert': byteSequence(tpp) });
      expect(h.ignored).toEqual([{ reason: 'untrusted-sender', remoteAddress: '127.0.0.1', header: 'client-cert' }]);
    }));

  it('is honoured from an IPv6 proxy address', () =>
    using(start({ plain: true, host: '::1', trustedProxies: ['::1/128'] }), async (h) => {
      await getPlain(h, { 'client-cert': byteSequence(tpp) }, '::1');
      expect(h.seen[0]?.via).toBe('forwarded');
    }));
});

describe('trusted proxy addresses', () => {
  it('accept addresses and CIDR ranges of both families', () => {
    const list = createProxyAllowList(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::ffff:198.51.100.1']);
    expect(list.check('10.1.2.3', 'ipv4')).toBe(true);
    expect(list.check('11.0.0.1', 'ipv4')).toBe(false);
    expect(list.check('192.0.2.7', 'ipv4')).toBe(true);
    expect(list.check('192.0.2.8', 'ipv4')).toBe(false);
    expect(list.check('2001:db8::1', 'ipv6')).toBe(true);
    expect(list.check('198.51.100.1', 'ipv4')).toBe(true);
  });

  it.each([
    ['gateway.local', 'trustedProxies.addresses: "gateway.local" is not an IP address or CIDR range'],
    ['10.0.0.0/40', 'trustedProxies.addresses: "10.0.0.0/40" has an invalid prefix length'],
    ['10.0.0.0/', 'trustedProxies.addresses: "10.0.0.0/" has an invalid prefix length'],
    ['10.0.0.0/8/9', 'trustedProxies.addresses: "10.0.0.0/8/9" has an invalid prefix length'],
    ['::/129', 'trustedProxies.addresses: "::/129" has an invalid prefix length'],
  ])('refuse %j, naming it', (entry, message) => {
    expect(() => createProxyAllowList([entry])).toThrow(message);
  });
});

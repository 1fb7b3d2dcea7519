import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ForwardedCertFormat } from '../config/schema.ts';
import { certificateThumbprint, verifyCertificateChain, type ChainVerification, type TrustAnchors } from './certificate-chain.ts';
import { subjectOf, type DistinguishedName } from './distinguished-name.ts';
import { ALL_FORWARDED_CERT_HEADERS, FORWARDED_CERT_HEADERS, readForwardedCertificate } from './forwarded-certificate.ts';

/** The client certificate a request presented, and what Moat makes of it. */
export interface PresentedCertificate {
  certificate: X509Certificate;
  chain: X509Certificate[];
  via: 'tls' | 'forwarded';
  verification: ChainVerification;
  /** RFC 8705 `x5t#S256`. */
  thumbprint: string;
  subject: DistinguishedName;
}

export interface IgnoredHeader {
  reason: 'untrusted-sender' | 'malformed';
  remoteAddress: string | undefined;
  header: string;
  detail?: string;
}

export interface ClientCertificateOptions {
  /** IPs or CIDR ranges of gateways allowed to forward a certificate. */
  trustedProxies: readonly string[];
  format: ForwardedCertFormat;
  anchors: TrustAnchors;
  onIgnoredHeader?: (info: IgnoredHeader) => void;
  now?: () => Date;
}

/** Accepts `10.0.0.0/8`, `192.0.2.7`, `::1`, `2001:db8::/32`; throws naming the bad entry. */
export function createProxyAllowList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, prefix] = entry.split('/');
    const family = isIP(address ?? '');
    if (family === 0) throw new Error(`trustedProxies.addresses: "${entry}" is not an IP address or CIDR range`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address!, type);
    else {
      const bits = Number(prefix);
      if (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) throw new Error(`trustedProxies.addresses: "${entry}" has an invalid prefix length`);
      list.addSubnet(address!, bits, type);
    }
  }
  return list;
}

function isTrusted(list: BlockList, remote: string | undefined): boolean {
  if (remote === undefined) return false;
  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote);
  const address = mapped?.[1] ?? remote;
  return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/**
 * One answer per request to "which client certificate did this request present, and does it
 * chain to a trust anchor?" — from the TLS handshake, or from a gateway's header when (and only
 * when) the connection comes from a trusted proxy address. Memoised per request.
 */
export function createClientCertificateResolver(options: ClientCertificateOptions): (req: IncomingMessage) => PresentedCertificate | undefined {
  const proxies = createProxyAllowList(options.trustedProxies);
  const memo = new WeakMap<IncomingMessage, PresentedCertificate | null>();
  const now = options.now ?? (() => new Date());
  const headerName = FORWARDED_CERT_HEADERS[options.format];

  const present = (certificate: X509Certificate, chain: X509Certificate[], via: 'tls' | 'forwarded'): PresentedCertificate => ({
    certificate, chain, via,
    verification: verifyCertificateChain(certificate, chain, options.anchors, now()),
    thumbprint: certificateThumbprint(certificate),
    subject: subjectOf(certificate),
  });

  const resolve = (req: IncomingMessage): PresentedCertificate | undefined => {
    const remote = req.socket.remoteAddress;
    if (isTrusted(proxies, remote)) {
      try {
        const forwarded = readForwardedCertificate(options.format, req.headers);
        return forwarded === undefined ? undefined : present(forwarded.certificate, forwarded.chain, 'forwarded');
      } catch (err) {
        options.onIgnoredHeader?.({ reason: 'malformed', remoteAddress: remote, header: headerName, detail: (err as Error).message });
        return undefined;
      }
    }
    const smuggled = ALL_FORWARDED_CERT_HEADERS.find((h) => req.headers[h] !== undefined);
    if (smuggled !== undefined) options.onIgnoredHeader?.({ reason: 'untrusted-sender', remoteAddress: remote, header: smuggled });
    const socket = req.socket as Partial<TLSSocket>;
    const peer = typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
    if (peer === undefined) return undefined;
    return present(peer, peerChain(peer), 'tls');
  };

  return (req) => {
    const cached = memo.get(req);
    if (cached !== undefined) return cached ?? undefined;
    const result = resolve(req);
    memo.set(req, result ?? null);
    return result;
  };
}

/** The intermediates the client sent in its handshake, as node exposes them. */
function peerChain(leaf: X509Certificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let current = leaf.issuerCertificate;
  for (let i = 0; current !== undefined && i < 5; i += 1) {
    if (current.raw.equals(leaf.raw) || chain.some((c) => c.raw.equals(current!.raw))) break;
    chain.push(current);
    current = current.issuerCertificate;
  }
  return chain;
}

import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ForwardedCertFormat } from '../config/schema.ts';
import { certificateThumbprint, verifyCertificateChain, type ChainVerification, type TrustAnchors } from './certificate-chain.ts';
import { subjectOf, type DistinguishedName } from './distinguished-name.ts';
import { ALL_FORWARDED_CERT_HEADERS, FORWARDED_CERT_HEADERS, readForwardedCertificate } from './forwarded-certificate.ts';

/*
 * The one place that answers "which client certificate did this request present, and is it
 * trusted?" (RFC 8705 §2 client authentication, §3 certificate-bound tokens). A certificate comes
 * from the TLS handshake when Moat terminates TLS, or from a gateway's header when the connection
 * comes from a trusted proxy address. Both go through the same `verifyCertificateChain` policy:
 * the handshake runs with `rejectUnauthorized: false` (see https-server.ts), so `socket.authorized`
 * is not the decision, and a forwarded certificate has no handshake of ours at all.
 */

/** The client certificate a request presented, and what Moat makes of it. */
export interface PresentedCertificate {
  certificate: X509Certificate;
  /** The intermediates sent with it (by the client in its handshake, or by the gateway). */
  chain: X509Certificate[];
  via: 'tls' | 'forwarded';
  verification: ChainVerification;
  /** RFC 8705 §3.1 `x5t#S256`. */
  thumbprint: string;
  subject: DistinguishedName;
}

/** A forwarded-certificate header Moat did not use, reported so it is logged. */
export interface IgnoredHeader {
  /** `untrusted-sender`: the connection is not from a trusted proxy; `malformed`: it is, but the header is unreadable. */
  reason: 'untrusted-sender' | 'malformed';
  remoteAddress: string | undefined;
  header: string;
  /** Why a trusted proxy's header was unreadable (never the header's content). */
  detail?: string;
}

/** Options of `createClientCertificateResolver`. */
export interface ClientCertificateOptions {
  /** IPs or CIDR ranges of gateways allowed to forward a certificate (`trustedProxies.addresses`). */
  trustedProxies: readonly string[];
  /** The header form those gateways send (`trustedProxies.format`). */
  format: ForwardedCertFormat;
  anchors: TrustAnchors;
  onIgnoredHeader?: (info: IgnoredHeader) => void;
  /** The clock certificates are checked against; injectable for tests. */
  now?: () => Date;
}

/** Answers, once per request, which client certificate it presented; undefined when none. */
export type ClientCertificateResolver = (req: IncomingMessage) => PresentedCertificate | undefined;

/**
 * A `BlockList` of the trusted proxies. Accepts `10.0.0.0/8`, `192.0.2.7`, `::1`, `2001:db8::/32`;
 * throws naming the entry for anything else, so a typo stops start-up instead of trusting nobody
 * (or, worse, everybody).
 */
export function createProxyAllowList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const address = normaliseAddress(slash === -1 ? entry.trim() : entry.slice(0, slash).trim());
    const family = isIP(address);
    if (family === 0) throw new Error(`trustedProxies.addresses: "${entry}" is not an IP address or CIDR range`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      list.addAddress(address, type);
      continue;
    }
    const prefix = entry.slice(slash + 1).trim();
    const bits = Number(prefix);
    if (!/^\d{1,3}$/.test(prefix) || bits > (family === 4 ? 32 : 128)) {
      throw new Error(`trustedProxies.addresses: "${entry}" has an invalid prefix length`);
    }
    list.addSubnet(address, bits, type);
  }
  return list;
}

/**
 * A dual-stack socket reports an IPv4 peer as `::ffff:a.b.c.d`; Moat checks and logs it as
 * `a.b.c.d`, the form trusted proxies are configured in (BlockList would match either form).
 */
function normaliseAddress(address: string): string {
  return /^::ffff:(\d{1,3}(\.\d{1,3}){3})$/i.exec(address)?.[1] ?? address;
}

function isTrustedProxy(list: BlockList, address: string | undefined): boolean {
  if (address === undefined) return false;
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The intermediates the client sent in its handshake (RFC 8446 §4.4.2 certificate_list), as node
 * links them from the leaf; https-server.ts makes sure node always does (see PLACEHOLDER_CRL). A
 * trust anchor OpenSSL found in `ca` may end the list; the path search copes with that.
 */
function handshakeChain(leaf: X509Certificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  for (let cert = leaf.issuerCertificate; cert !== undefined && chain.length < 10; cert = cert.issuerCertificate) {
    if (cert.raw.equals(leaf.raw) || chain.some((c) => c.raw.equals(cert!.raw))) break;
    chain.push(cert);
  }
  return chain;
}

/** A connection's trusted certificate and how long that verdict holds. */
interface VerifiedOnConnection {
  raw: Buffer;
  presented: PresentedCertificate;
  /** Epoch ms: the earliest expiry among the leaf, the certificates sent with it and the anchor. */
  validUntil: number;
}

function trustedUntil(presented: PresentedCertificate): number {
  const certificates = [presented.certificate, ...presented.chain];
  if (presented.verification.trusted) certificates.push(presented.verification.anchor);
  return Math.min(...certificates.map((c) => new Date(c.validTo).getTime()));
}

/**
 * Builds the resolver used by every endpoint that authenticates or binds to a client certificate.
 *
 * - From a trusted proxy address, the configured forwarded header is the certificate (absent header:
 *   no certificate; malformed header: no certificate, reported as `malformed`).
 * - From any other address, forwarded-certificate headers are ignored and reported as
 *   `untrusted-sender` (someone trying to smuggle a certificate past the gateway), and the TLS
 *   handshake's certificate, if any, is used.
 * Results are memoised per request, since several steps of one request ask, and a trusted handshake
 * certificate's verification per connection until the earliest expiry in its chain. Revocation is
 * not part of this verdict: the certificate gate asks the registry on every request.
 */
export function createClientCertificateResolver(options: ClientCertificateOptions): ClientCertificateResolver {
  const proxies = createProxyAllowList(options.trustedProxies);
  const memo = new WeakMap<IncomingMessage, PresentedCertificate | null>();
  const perConnection = new WeakMap<TLSSocket, VerifiedOnConnection>();
  const now = options.now ?? (() => new Date());
  const headerName = FORWARDED_CERT_HEADERS[options.format];

  const present = (certificate: X509Certificate, chain: X509Certificate[], via: PresentedCertificate['via']): PresentedCertificate => ({
    certificate,
    chain,
    via,
    verification: verifyCertificateChain(certificate, chain, options.anchors, now()),
    thumbprint: certificateThumbprint(certificate),
    subject: subjectOf(certificate),
  });

  const resolve = (req: IncomingMessage): PresentedCertificate | undefined => {
    const remote = req.socket.remoteAddress === undefined ? undefined : normaliseAddress(req.socket.remoteAddress);
    if (isTrustedProxy(proxies, remote)) {
      try {
        const forwarded = readForwardedCertificate(options.format, req.headersDistinct);
        return forwarded === undefined ? undefined : present(forwarded.certificate, forwarded.chain, 'forwarded');
      } catch (err) {
        options.onIgnoredHeader?.({ reason: 'malformed', remoteAddress: remote, header: headerName, detail: (err as Error).message });
        return undefined;
      }
    }
    for (const header of ALL_FORWARDED_CERT_HEADERS) {
      if (req.headers[header] !== undefined) options.onIgnoredHeader?.({ reason: 'untrusted-sender', remoteAddress: remote, header });
    }
    const socket = req.socket as Partial<TLSSocket>;
    if (typeof socket.getPeerX509Certificate !== 'function') return undefined;
    const peer = socket.getPeerX509Certificate();
    if (peer === undefined) return undefined;
    // A keep-alive connection presents the same certificate on every request: parse and verify it
    // once. The DER is compared because a TLS 1.2 renegotiation could swap the certificate.
    const tlsSocket = socket as TLSSocket;
    const earlier = perConnection.get(tlsSocket);
    if (earlier !== undefined && earlier.raw.equals(peer.raw) && now().getTime() <= earlier.validUntil) return earlier.presented;
    const presented = present(peer, handshakeChain(peer), 'tls');
    if (presented.verification.trusted) {
      perConnection.set(tlsSocket, { raw: peer.raw, presented, validUntil: trustedUntil(presented) });
    } else {
      perConnection.delete(tlsSocket);
    }
    return presented;
  };

  return (req) => {
    const cached = memo.get(req);
    if (cached !== undefined) return cached ?? undefined;
    const result = resolve(req);
    memo.set(req, result ?? null);
    return result;
  };
}

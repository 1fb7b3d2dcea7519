import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { ForwardedCertFormat } from '../pki/forwarded-certificate.ts';
import { certificateThumbprint, verifyCertificateChain, type ChainVerification, type TrustAnchors } from '../pki/certificate-chain.ts';
import { subjectOf, type DistinguishedName } from '../pki/distinguished-name.ts';
import { ALL_FORWARDED_CERT_HEADERS, FORWARDED_CERT_HEADERS, readForwardedCertificate } from '../pki/forwarded-certificate.ts';
import { peerCertificateIsFixed } from './https-server.ts';
import { createHandshakeIntermediates, type SessionChains } from './session-chains.ts';
import { createTrustedProxies } from './trusted-proxies.ts';

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
  /** Where a resumed TLS session's intermediates are remembered, when the listener resumes sessions. */
  sessionChains?: Pick<SessionChains, 'intermediatesOf' | 'vouch'>;
}

/** Answers, once per request, which client certificate it presented; undefined when none. */
export type ClientCertificateResolver = (req: IncomingMessage) => PresentedCertificate | undefined;

/** A connection's trusted certificate and how long that verdict holds. */
interface VerifiedOnConnection {
  raw: Buffer;
  presented: PresentedCertificate;
  /** Epoch ms: the earliest expiry among the leaf, the certificates sent with it and the anchor. */
  validUntil: number;
  /** The anchor set it was verified against: a reloaded set (trust/trust-file-reload.ts) verifies again. */
  anchors: X509Certificate[];
}

/** A trusted verdict for a leaf sent with these intermediates, kept across connections. */
interface VerifiedChain extends VerifiedOnConnection {
  intermediates: Buffer[];
}

/**
 * Client certificates whose trusted verdicts are kept across connections: a bank's TPPs have a few
 * thousand transport certificates at most, and an entry is a few parsed certificates.
 */
const VERIFIED_CHAINS_CAPACITY = 10_000;

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
 * certificate's verification per connection, and across connections for the same leaf and
 * intermediates, until the earliest expiry in its chain. Revocation is not part of this verdict: the
 * certificate gate asks the registry on every request.
 */
export function createClientCertificateResolver(options: ClientCertificateOptions): ClientCertificateResolver {
  const proxies = createTrustedProxies(options.trustedProxies);
  const memo = new WeakMap<IncomingMessage, PresentedCertificate | null>();
  const perConnection = new WeakMap<TLSSocket, VerifiedOnConnection>();
  // By leaf fingerprint; insertion order is recency (least recently used out first).
  const verifiedChains = new Map<string, VerifiedChain>();
  const now = options.now ?? (() => new Date());
  const headerName = FORWARDED_CERT_HEADERS[options.format];
  const handshakeIntermediates = createHandshakeIntermediates();

  const present = (certificate: X509Certificate, chain: X509Certificate[], via: PresentedCertificate['via']): PresentedCertificate => ({
    certificate,
    chain,
    via,
    verification: verifyCertificateChain(certificate, chain, options.anchors, now()),
    thumbprint: certificateThumbprint(certificate),
    subject: subjectOf(certificate),
  });

  const resolve = (req: IncomingMessage): PresentedCertificate | undefined => {
    const remote = proxies.peerAddress(req);
    if (proxies.peerIsTrusted(req)) {
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
    // A keep-alive connection presents the same certificate on every request: parse and verify it
    // once. On a listener that refuses renegotiation (all of Moat's, https-server.ts) the connection
    // is all it takes, not even reading the certificate again; elsewhere the DER is compared, since
    // a TLS 1.2 renegotiation could swap the certificate.
    const tlsSocket = socket as TLSSocket;
    const earlier = perConnection.get(tlsSocket);
    const stillValid = earlier !== undefined && now().getTime() <= earlier.validUntil && earlier.anchors === options.anchors.certificates;
    if (stillValid && peerCertificateIsFixed(tlsSocket)) return earlier.presented;
    const peer = tlsSocket.getPeerX509Certificate();
    if (peer === undefined) return undefined;
    if (stillValid && earlier.raw.equals(peer.raw)) return earlier.presented;
    // A resumed session holds the leaf alone: its intermediates are those of the full handshake
    // that established it (session-chains.ts); unknown ones verify as none, which fails closed.
    const intermediates =
      options.sessionChains !== undefined
        ? (options.sessionChains.intermediatesOf(tlsSocket, peer) ?? [])
        : tlsSocket.isSessionReused()
          ? []
          : handshakeIntermediates(tlsSocket, peer);
    // A new connection (a resumed session above all) of a certificate verified on an earlier one,
    // with the same intermediates, against the same anchors, before the earliest expiry among them:
    // the same verdict, without parsing and verifying the chain again.
    const key = peer.fingerprint256;
    const known = verifiedChains.get(key);
    if (known !== undefined) verifiedChains.delete(key);
    if (
      known !== undefined &&
      known.raw.equals(peer.raw) &&
      known.intermediates.length === intermediates.length &&
      known.intermediates.every((raw, i) => raw.equals(intermediates[i]!.raw)) &&
      now().getTime() <= known.validUntil &&
      known.anchors === options.anchors.certificates
    ) {
      verifiedChains.set(key, known);
      perConnection.set(tlsSocket, known);
      options.sessionChains?.vouch(peer, intermediates);
      return known.presented;
    }
    const presented = present(peer, intermediates, 'tls');
    if (presented.verification.trusted) {
      const verified = { raw: peer.raw, presented, validUntil: trustedUntil(presented), anchors: options.anchors.certificates };
      perConnection.set(tlsSocket, verified);
      verifiedChains.set(key, { ...verified, intermediates: intermediates.map((c) => c.raw) });
      options.sessionChains?.vouch(peer, intermediates);
      if (verifiedChains.size > VERIFIED_CHAINS_CAPACITY) verifiedChains.delete(verifiedChains.keys().next().value!);
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

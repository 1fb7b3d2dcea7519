import { randomBytes, type X509Certificate } from 'node:crypto';
import type { Server as TlsServer, TLSSocket } from 'node:tls';

/*
 * TLS session resumption (RFC 8446 §2.2 and §4.6.1, RFC 5077) without losing the client's chain.
 *
 * A resumed session carries the client certificate it was established with (OpenSSL keeps the leaf
 * in the session state, which travels inside the ticket) but not the intermediates the client sent:
 * node reports the leaf alone. So the intermediates of each full handshake are remembered here, by
 * the leaf's DER, and a resumed session's certificate is verified with them exactly as a full
 * handshake's is (client-certificate.ts): against the trust anchors of the moment, at the time of
 * the request, and the registry's revocation verdict is asked on every request as on every other.
 * Nothing here is a verdict, only what a client sent: a stale entry can make a certificate
 * untrusted, never trusted.
 *
 * Why the leaf of a resumed session is the client's own: the ticket is encrypted and authenticated
 * with this process's ticket key and holds the session's secret, so only the client that completed
 * the full handshake (signing it with the certificate's key, RFC 8446 §4.4.3) can resume it.
 * Keying by leaf rather than by session is sound because a chain's validity depends only on the
 * leaf, the intermediates, the anchors and the time; the leaf's holder may have sent different
 * intermediates on different connections, and the last ones are used.
 *
 * A ticket never resumes without its chain here:
 * - the ticket keys are this process's own, random and replaced every `ticketKeyRotationSeconds`. A
 *   ticket of another instance, of a process before a restart, or of another node:cluster worker
 *   (node gives the workers one default key) cannot be decrypted, and that client makes a full
 *   handshake;
 * - an entry is kept for at least the session lifetime after the last handshake that saw its leaf
 *   (TLS 1.3 issues new tickets on a resumed connection, so that one counts); when the bound forces
 *   out an entry younger than that, the ticket keys are replaced first, so every ticket issued until
 *   then falls back to a full handshake (entries no request found trusted go first, see evictOne). A handshake already past its ClientHello at that moment
 *   (node: "pending connections use the previous keys") could still resume with an evicted leaf: it
 *   is verified without intermediates, which refuses a certificate issued through one (fails closed).
 */

/** Node's ticket keys: three 16-byte keys (name, AES, HMAC) given as one buffer. */
const TICKET_KEYS_BYTES = 48;

/**
 * Client certificates whose chains are remembered. A bank has hundreds to a few thousand TPPs, each
 * with a transport certificate or two; an entry is its intermediates (a few KiB), so this bounds the
 * store to tens of MiB at the very worst while no real deployment reaches it.
 */
export const SESSION_CHAINS_CAPACITY = 10_000;

/**
 * The intermediates the client sent in its handshake (RFC 8446 §4.4.2 certificate_list), as node
 * links them from the leaf; https-server.ts makes sure node always does (see PLACEHOLDER_CRL). A
 * trust anchor OpenSSL found in `ca` may end the list; the path search copes with that. Empty on a
 * resumed session, whose state holds the leaf alone.
 *
 * Node links them only for the first `getPeerX509Certificate()` of a connection: a second call
 * returns the leaf without its issuers. So each connection's are read once, here, and kept with
 * the leaf they came with (a TLS 1.2 renegotiation could present another, read afresh).
 */
export function createHandshakeIntermediates(): (socket: TLSSocket, leaf: X509Certificate) => X509Certificate[] {
  const bySocket = new WeakMap<TLSSocket, { leaf: Buffer; chain: X509Certificate[] }>();
  return (socket, leaf) => {
    const known = bySocket.get(socket);
    if (known !== undefined && known.leaf.equals(leaf.raw)) return known.chain;
    const chain: X509Certificate[] = [];
    for (let cert = leaf.issuerCertificate; cert !== undefined && chain.length < 10; cert = cert.issuerCertificate) {
      if (cert.raw.equals(leaf.raw) || chain.some((c) => c.raw.equals(cert!.raw))) break;
      chain.push(cert);
    }
    bySocket.set(socket, { leaf: leaf.raw, chain });
    return chain;
  };
}

/** Options of `createSessionChains`. */
export interface SessionChainsOptions {
  /** How long a session can be resumed after its last handshake (the server's `sessionTimeout`). */
  lifetimeSeconds: number;
  /** How often the ticket keys are replaced (tickets issued before then make a full handshake). */
  ticketKeyRotationSeconds: number;
  /** Most client certificates remembered; `SESSION_CHAINS_CAPACITY` by default. */
  capacity?: number;
  /** Epoch ms; injectable for tests. */
  now?: () => number;
  /** Told each time the ticket keys are replaced, and why. */
  onTicketKeysReplaced?: (reason: 'schedule' | 'eviction') => void;
}

/** The chains behind resumable sessions of one TLS listener. */
export interface SessionChains {
  /**
   * The intermediates sent with `leaf`, the certificate of `socket`: in its own handshake, or for a
   * resumed session in the last full handshake that presented the leaf; undefined when they are not
   * known (see the module comment).
   */
  intermediatesOf(socket: TLSSocket, leaf: X509Certificate): X509Certificate[] | undefined;
  /** A request found `leaf` trusted with `intermediates`: that chain is kept before any no request vouched for. */
  vouch(leaf: X509Certificate, intermediates: X509Certificate[]): void;
  /** Starts remembering the handshakes of `server`, gives it its own ticket keys and replaces them on schedule. */
  attach(server: TlsServer): void;
  /**
   * Puts this listener's ticket keys back after `server.setSecureContext` (a renewed certificate,
   * reloaded anchors), which gives the new context keys of its own: under node:cluster the ones
   * every worker shares, which would let a worker resume another's ticket without its chain.
   */
  secureContextReplaced(): void;
  /** Stops the schedule. */
  detach(): void;
  /** Client certificates remembered now. */
  readonly size: number;
}

interface Remembered {
  leaf: Buffer;
  intermediates: X509Certificate[];
  /** Epoch ms of the last handshake (full or resumed) that presented the leaf. */
  lastSeen: number;
  /** A request found the leaf trusted with these intermediates (`vouch`). */
  vouched: boolean;
}

const sameChain = (a: readonly X509Certificate[], b: readonly X509Certificate[]) => a.length === b.length && a.every((c, i) => c.raw.equals(b[i]!.raw));

export function createSessionChains(options: SessionChainsOptions): SessionChains {
  const capacity = options.capacity ?? SESSION_CHAINS_CAPACITY;
  const lifetimeMs = options.lifetimeSeconds * 1000;
  const now = options.now ?? Date.now;
  // Insertion order is recency: an entry seen again is moved to the end, the first is the oldest.
  const byLeaf = new Map<string, Remembered>();
  const handshakeIntermediates = createHandshakeIntermediates();
  let server: TlsServer | undefined;
  let rotation: NodeJS.Timeout | undefined;
  let ticketKeys: Buffer | undefined;

  const replaceTicketKeys = (reason: 'schedule' | 'eviction') => {
    if (server === undefined) return;
    ticketKeys = randomBytes(TICKET_KEYS_BYTES);
    server.setTicketKeys(ticketKeys);
    options.onTicketKeysReplaced?.(reason);
  };

  const remember = (leaf: X509Certificate, intermediates: X509Certificate[] | undefined) => {
    const key = leaf.fingerprint256;
    const earlier = byLeaf.get(key);
    byLeaf.delete(key);
    // A resumed handshake carries no intermediates: it keeps the ones remembered, if any.
    const known = intermediates ?? earlier?.intermediates;
    if (known === undefined) return;
    const vouched = earlier !== undefined && earlier.vouched && sameChain(earlier.intermediates, known);
    byLeaf.set(key, { leaf: leaf.raw, intermediates: known, lastSeen: now(), vouched });
    while (byLeaf.size > capacity) evictOne(key);
  };

  /**
   * Makes room. Any certificate at all reaches `remember` (a handshake is not refused for an
   * untrusted chain, see https-server.ts), so a flood of throwaway certificates must not push out
   * the TPPs' chains nor make the keys change on every connection: the oldest entry no request has
   * vouched for goes first, without touching the keys, but never the one just added (a TPP's request
   * has yet to vouch for it); a trusted certificate whose connection made no request may be among
   * them, and its resumed session fails closed, once. Only when every other entry is vouched for
   * does the oldest go, the ticket keys replaced first if it is still resumable.
   */
  const evictOne = (added: string) => {
    for (const [key, entry] of byLeaf) {
      if (!entry.vouched && key !== added) {
        byLeaf.delete(key);
        return;
      }
    }
    const [oldestKey, oldest] = byLeaf.entries().next().value as [string, Remembered];
    if (oldest.lastSeen + lifetimeMs > now()) replaceTicketKeys('eviction');
    byLeaf.delete(oldestKey);
  };

  const onSecureConnection = (socket: TLSSocket) => {
    const leaf = socket.getPeerX509Certificate();
    if (leaf === undefined) return;
    remember(leaf, socket.isSessionReused() ? undefined : handshakeIntermediates(socket, leaf));
  };

  return {
    intermediatesOf(socket, leaf) {
      if (!socket.isSessionReused()) return handshakeIntermediates(socket, leaf);
      const remembered = byLeaf.get(leaf.fingerprint256);
      return remembered !== undefined && remembered.leaf.equals(leaf.raw) ? remembered.intermediates : undefined;
    },
    vouch(leaf, intermediates) {
      const key = leaf.fingerprint256;
      const remembered = byLeaf.get(key);
      if (remembered !== undefined && remembered.leaf.equals(leaf.raw) && sameChain(remembered.intermediates, intermediates)) {
        remembered.vouched = true;
        return;
      }
      // Gone since its handshake (room was made), or sent with other intermediates: remembered as vouched.
      byLeaf.delete(key);
      byLeaf.set(key, { leaf: leaf.raw, intermediates, lastSeen: now(), vouched: true });
      while (byLeaf.size > capacity) evictOne(key);
    },
    attach(tlsServer) {
      if (server !== undefined) throw new Error('session chains are already attached to a server');
      server = tlsServer;
      replaceTicketKeys('schedule');
      tlsServer.on('secureConnection', onSecureConnection);
      rotation = setInterval(() => replaceTicketKeys('schedule'), options.ticketKeyRotationSeconds * 1000);
      rotation.unref();
    },
    secureContextReplaced() {
      if (server !== undefined && ticketKeys !== undefined) server.setTicketKeys(ticketKeys);
    },
    detach() {
      clearInterval(rotation);
      server?.off('secureConnection', onSecureConnection);
    },
    get size() {
      return byLeaf.size;
    },
  };
}

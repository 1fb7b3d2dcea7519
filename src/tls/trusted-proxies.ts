import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';

/*
 * The one notion of "the peer of this connection is a trusted proxy" (`trustedProxies.addresses`),
 * and what follows from it. A header a proxy adds — the client certificate (client-certificate.ts),
 * the client's address (`X-Forwarded-For`), the scheme it was reached over (`X-Forwarded-Proto`) —
 * is believed only when the connection comes from one of those addresses; from anyone else it is
 * what a caller wrote about itself, and the connection itself is the truth. Koa's own `app.proxy`
 * would believe these headers from whoever reaches the port, so app.ts asks here instead.
 */

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
export function normaliseAddress(address: string): string {
  return /^::ffff:(\d{1,3}(\.\d{1,3}){3})$/i.exec(address)?.[1] ?? address;
}

/**
 * An `X-Forwarded-For` entry without its port: `192.0.2.7:5678` → `192.0.2.7`, `[2001:db8::1]:443`
 * and `[2001:db8::1]` → `2001:db8::1`. A bare IPv6 address (colons, no brackets) has no port.
 */
function withoutPort(entry: string): string {
  const bracketed = /^\[([^\]]*)\](?::\d{1,5})?$/.exec(entry);
  if (bracketed !== null) return bracketed[1]!;
  return /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(entry)?.[1] ?? entry;
}

/**
 * What a per-address counter (rate limits, the sign-in throttle) counts a client under: an IPv4
 * address as itself, an IPv6 address by its /64. A /64 is one network — the smallest an ISP
 * delegates (RFC 6177), where each host picks its own interface identifiers (RFC 8981 temporary
 * addresses) — so one client has 2^64 addresses to rotate through, and counting each on its own
 * would let it dodge every per-address limit. Written `2001:db8:0:1::/64`.
 */
export function addressBucket(address: string): string {
  const plain = normaliseAddress(address);
  if (isIP(plain) !== 6) return plain;
  const [head = '', tail] = plain.split('%')[0]!.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  // A dotted IPv4 tail is two groups, always in the last 64 bits.
  const right = tail === undefined ? [] : groups(tail).flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]));
  const left = groups(head);
  const all = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${all
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

export interface TrustedProxies {
  /** The address of the connection's peer, normalised; undefined once the socket is gone. */
  peerAddress(req: IncomingMessage): string | undefined;
  /** Whether the connection comes from a trusted proxy. */
  peerIsTrusted(req: IncomingMessage): boolean;
  /**
   * The client's address, for rate limits, sign-in throttling and threat signals: the peer's,
   * unless the peer is a trusted proxy; then `X-Forwarded-For` read from the right (the entry the
   * nearest proxy added) past every trusted proxy, to the first address that is not one. What lies
   * further left was written by the client or proxies nobody vouches for. A port on an entry
   * (`192.0.2.7:5678`, `[2001:db8::1]:443`, as some gateways write them) is not part of the
   * address; an entry that is not an IP address ends the walk at the last address vouched for.
   */
  clientAddress(req: IncomingMessage): string;
  /**
   * The scheme the client used: https on Moat's own TLS; from a trusted proxy its
   * `X-Forwarded-Proto`, and https when it sends none — the gateway Moat is deployed behind
   * terminates TLS; from anyone else on a plain connection, http. Of several values (proxies that
   * append rather than replace) the last counts: the one the trusted proxy nearest Moat added, as
   * for `X-Forwarded-For`; values further left came from hops nobody vouches for, or the client.
   */
  scheme(req: IncomingMessage): 'https' | 'http';
}

export function createTrustedProxies(entries: readonly string[]): TrustedProxies {
  const list = createProxyAllowList(entries);
  const trusts = (address: string | undefined): boolean => {
    if (address === undefined) return false;
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  };
  const peerAddress = (req: IncomingMessage) => (req.socket.remoteAddress === undefined ? undefined : normaliseAddress(req.socket.remoteAddress));
  /** Every field line of a list-valued header, as one list (RFC 9110 §5.3). */
  const listHeader = (req: IncomingMessage, name: string): string[] =>
    (req.headersDistinct[name] ?? [])
      .flatMap((line) => line.split(','))
      .map((value) => value.trim())
      .filter((value) => value !== '');

  return {
    peerAddress,
    peerIsTrusted: (req) => trusts(peerAddress(req)),
    clientAddress(req) {
      const peer = peerAddress(req) ?? '';
      if (!trusts(peer)) return peer;
      let address = peer;
      const hops = listHeader(req, 'x-forwarded-for');
      for (let i = hops.length - 1; i >= 0; i -= 1) {
        const hop = normaliseAddress(withoutPort(hops[i]!));
        if (isIP(hop) === 0) break;
        address = hop;
        if (!trusts(hop)) break;
      }
      return address;
    },
    scheme(req) {
      if ((req.socket as Partial<TLSSocket>).encrypted === true) return 'https';
      if (!trusts(peerAddress(req))) return 'http';
      const proto = listHeader(req, 'x-forwarded-proto').at(-1)?.toLowerCase();
      return proto === undefined || proto === 'https' ? 'https' : 'http';
    },
  };
}

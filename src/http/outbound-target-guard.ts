import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/*
 * Requests Moat makes to URLs a TPP chose (the notification endpoint of its registration) must not
 * become a way into the bank's own network — server-side request forgery: a registered URL naming
 * 127.0.0.1, 10.x or 169.254.169.254 (a cloud metadata service) would have Moat, from inside, post
 * to it. The guard refuses non-public addresses unless the operator allowed them, and checks the
 * address a name resolves to when the connection is made (the request's `lookup`), so a name
 * re-pointed after a check cannot slip through.
 */

/** Address blocks no public endpoint has: RFC 6890's special-purpose registries, as IANA lists them. */
const NON_PUBLIC: readonly [string, number, 'ipv4' | 'ipv6', string][] = [
  ['0.0.0.0', 8, 'ipv4', 'this network'],
  ['10.0.0.0', 8, 'ipv4', 'private (RFC 1918)'],
  ['100.64.0.0', 10, 'ipv4', 'shared address space (RFC 6598)'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local (cloud metadata services live here)'],
  ['172.16.0.0', 12, 'ipv4', 'private (RFC 1918)'],
  ['192.0.0.0', 24, 'ipv4', 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'ipv4', 'documentation'],
  ['192.168.0.0', 16, 'ipv4', 'private (RFC 1918)'],
  ['198.18.0.0', 15, 'ipv4', 'benchmarking'],
  ['198.51.100.0', 24, 'ipv4', 'documentation'],
  ['203.0.113.0', 24, 'ipv4', 'documentation'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['64:ff9b:1::', 48, 'ipv6', 'local-use translation'],
  ['100::', 64, 'ipv6', 'discard-only'],
  ['2001:db8::', 32, 'ipv6', 'documentation'],
  ['fc00::', 7, 'ipv6', 'unique local (private)'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

const NON_PUBLIC_BLOCKS = NON_PUBLIC.map(([network, prefix, family, what]) => {
  const block = new BlockList();
  block.addSubnet(network, prefix, family);
  return { block, family, what };
});

/** `a.b.c.d` of an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2): it reaches that IPv4 address. */
function mappedIpv4(address: string): string | undefined {
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (match !== null) return match[1];
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hex === null) return undefined;
  const [hi, lo] = [Number.parseInt(hex[1]!, 16), Number.parseInt(hex[2]!, 16)];
  return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.');
}

export class RefusedTargetError extends Error {
  readonly code = 'ERR_MOAT_REFUSED_TARGET';
  constructor(message: string) {
    super(message);
    this.name = 'RefusedTargetError';
  }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

export interface OutboundTargetGuard {
  /** Why `address` (an IP address) may not be reached, or undefined when it may. */
  refusal(address: string): string | undefined;
  /** A `lookup` for https.request: refuses a name when any address it resolves to is refused. */
  lookup(hostname: string, options: LookupOneOptions | LookupAllOptions, callback: LookupCallback): void;
}

/**
 * `allowPrivate` (the sandbox) lets every address through; otherwise non-public addresses are
 * refused unless inside one of `allowed` (addresses or CIDR blocks, as the configuration checked them).
 */
export function createOutboundTargetGuard(options: { allowPrivate: boolean; allowed: readonly string[] }): OutboundTargetGuard {
  const allowed = new BlockList();
  for (const entry of options.allowed) {
    const [address, prefix] = entry.split('/') as [string, string | undefined];
    const type = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) allowed.addAddress(address, type);
    else allowed.addSubnet(address, Number(prefix), type);
  }
  const refusal = (address: string): string | undefined => {
    if (options.allowPrivate) return undefined;
    const own = isIP(address) === 4 ? ('ipv4' as const) : ('ipv6' as const);
    const v4 = own === 'ipv6' ? mappedIpv4(address) : undefined;
    const [checked, type] = v4 === undefined ? [address, own] : [v4, 'ipv4' as const];
    if (allowed.check(checked, type) || allowed.check(address, own)) return undefined;
    const hit = NON_PUBLIC_BLOCKS.find(({ block, family }) => family === type && block.check(checked, type));
    return hit === undefined
      ? undefined
      : `${address} is not a public address (${hit.what}); allow it in certificates.expiryNotices.allowedPrivateTargets if it is meant`;
  };
  return {
    refusal,
    lookup(hostname, lookupOptions, callback) {
      dnsLookup(hostname, { ...lookupOptions, all: true }, (err, addresses) => {
        if (err !== null) return callback(err, []);
        for (const { address } of addresses) {
          const why = refusal(address);
          if (why !== undefined) return callback(new RefusedTargetError(`${hostname} resolves to ${why}`), []);
        }
        if (lookupOptions.all === true) return callback(null, addresses);
        const [first] = addresses;
        if (first === undefined) return callback(new RefusedTargetError(`${hostname} resolves to no address`), []);
        return callback(null, first.address, first.family);
      });
    },
  };
}

import { isIP } from 'node:net';

/*
 * What the detector counts. One request becomes a few increments, each to a signal of an entity:
 * the TPP's client (`client:<id>`), the source range a customer sign-in came from
 * (`range:<prefix>`), or the bank's login page as a whole (`login`).
 */

/** One request as the detector sees it, after Moat has answered it. */
export interface Observation {
  at: Date;
  /** The client oidc-provider identified, when it did. */
  clientId?: string;
  address: string;
  /** `par`, `token`, `introspect`, `login`, … (the metrics' endpoint label). */
  endpoint: string;
  /** The request log's outcome class (`ok`, an OAuth error code, `mtls_*`, `login_failed`, …). */
  outcome: string;
  customerId?: string;
}

/** Counted per bucket and judged against the entity's learned baseline. */
export type CountSignal = `requests:${string}` | 'errors:invalid_grant' | 'errors:invalid_client' | 'errors:mtls' | 'probing' | 'login_failures';
/** Counted as distinct members per bucket (HyperLogLog in Redis). */
export type DistinctSignal = 'customers' | 'source_ranges';

/** OAuth errors that mean "asked for something it may not have": scope or role probing. */
const PROBING_OUTCOMES = new Set(['invalid_scope', 'unauthorized_client', 'invalid_authorization_details', 'insufficient_scope', 'access_denied_role']);

export interface Increments {
  entity: string;
  counts: CountSignal[];
  distinct: [DistinctSignal, string][];
  /** A source range to check against the ranges the entity is known to use. */
  range?: string;
}

/** The /24 (IPv4) or /48 (IPv6) an address belongs to: where a TPP's servers or a botnet sit. */
export function sourceRange(address: string): string {
  const plain = /^::ffff:(\d{1,3}(\.\d{1,3}){3})$/i.exec(address)?.[1] ?? address;
  if (isIP(plain) === 4) return `${plain.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIP(plain) === 6) {
    const [head = '', tail] = plain.split('::');
    const groups = head.split(':').filter(Boolean);
    const filled = tail === undefined ? groups : [...groups, ...new Array<string>(8).fill('0')].slice(0, 8);
    return `${filled
      .slice(0, 3)
      .map((g) => g.toLowerCase())
      .join(':')}::/48`;
  }
  return 'unknown';
}

export function incrementsOf(o: Observation): Increments[] {
  const out: Increments[] = [];
  if (o.clientId !== undefined) {
    const counts: CountSignal[] = [`requests:${o.endpoint}`];
    if (o.outcome === 'invalid_grant') counts.push('errors:invalid_grant');
    if (o.outcome === 'invalid_client') counts.push('errors:invalid_client');
    if (o.outcome.startsWith('mtls_')) counts.push('errors:mtls');
    if (PROBING_OUTCOMES.has(o.outcome)) counts.push('probing');
    const range = sourceRange(o.address);
    const distinct: [DistinctSignal, string][] = [['source_ranges', range]];
    if (o.customerId !== undefined) distinct.push(['customers', o.customerId]);
    out.push({ entity: `client:${o.clientId}`, counts, distinct, range });
  }
  if (o.endpoint === 'login' && (o.outcome === 'login_failed' || o.outcome === 'login_locked')) {
    out.push({ entity: `range:${sourceRange(o.address)}`, counts: ['login_failures'], distinct: [] });
    out.push({ entity: 'login', counts: ['login_failures'], distinct: [] });
  }
  return out;
}

/** Words for an operator: what a signal measures. */
export function describeSignal(signal: string): string {
  if (signal.startsWith('requests:')) return `requests to ${signal.slice('requests:'.length)}`;
  switch (signal) {
    case 'errors:invalid_grant':
      return 'invalid_grant answers (replayed or stolen codes and refresh tokens)';
    case 'errors:invalid_client':
      return 'failed client authentications';
    case 'errors:mtls':
      return 'client-certificate failures (mismatch, revoked, untrusted)';
    case 'probing':
      return 'requests for scopes, permissions or roles outside the registration';
    case 'login_failures':
      return 'failed customer sign-ins';
    case 'customers':
      return 'distinct customers';
    case 'source_ranges':
      return 'distinct source address ranges';
    case 'new_source_range':
      return 'a source address range never seen for this client';
    default:
      return signal;
  }
}

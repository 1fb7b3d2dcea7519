import { X509Certificate } from 'node:crypto';
import { parseItem, parseList } from 'structured-headers';
import type { ForwardedCertFormat } from '../config/schema.ts';
import { splitPemCertificates } from './certificate-chain.ts';

/*
 * The client certificate as an mTLS-terminating gateway forwards it. Three forms are common:
 * - RFC 9440: `Client-Cert` is a Structured Field Byte Sequence of the DER certificate and
 *   `Client-Cert-Chain` a list of them (parsed with the structured-headers library);
 * - nginx: `X-SSL-Client-Cert: $ssl_client_escaped_cert`, the PEM URL-encoded;
 * - Envoy: `X-Forwarded-Client-Cert` (XFCC), `Key=value` pairs separated by `;`, elements by `,`,
 *   values optionally quoted. No maintained library reads XFCC, so a small strict reader is here.
 * Whether the header is believed at all is decided by the caller (trusted proxy addresses).
 */

export interface ForwardedCertificate {
  certificate: X509Certificate;
  chain: X509Certificate[];
}

export class MalformedForwardedCertificateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MalformedForwardedCertificateError';
  }
}

/** The header each format uses (lowercase, as node presents them). */
export const FORWARDED_CERT_HEADERS: Record<ForwardedCertFormat, string> = {
  rfc9440: 'client-cert',
  nginx: 'x-ssl-client-cert',
  'envoy-xfcc': 'x-forwarded-client-cert',
};

/** Every header that could carry a forwarded certificate, to notice one from an untrusted sender. */
export const ALL_FORWARDED_CERT_HEADERS = [...Object.values(FORWARDED_CERT_HEADERS), 'client-cert-chain'];

type Headers = Record<string, string | string[] | undefined>;

function single(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) {
    if (value.length > 1) throw new MalformedForwardedCertificateError(`${name} appears more than once`);
    return value[0];
  }
  return value;
}

/** Returns the forwarded certificate, undefined when the header is absent, or throws when malformed. */
export function readForwardedCertificate(format: ForwardedCertFormat, headers: Headers): ForwardedCertificate | undefined {
  const raw = single(headers, FORWARDED_CERT_HEADERS[format]);
  if (raw === undefined || raw.trim() === '') return undefined;
  switch (format) {
    case 'rfc9440': return readRfc9440(raw, single(headers, 'client-cert-chain'));
    case 'nginx': return readPemList(decodeUri(raw, 'x-ssl-client-cert'), 'x-ssl-client-cert');
    case 'envoy-xfcc': return readXfcc(raw);
  }
}

function isArrayBuffer(value: unknown): value is ArrayBuffer {
  return Object.prototype.toString.call(value) === '[object ArrayBuffer]';
}

function der(bytes: ArrayBuffer, what: string): X509Certificate {
  try {
    return new X509Certificate(Buffer.from(bytes));
  } catch (cause) {
    throw new MalformedForwardedCertificateError(`${what} is not a DER certificate`, { cause });
  }
}

function readRfc9440(value: string, chainValue: string | undefined): ForwardedCertificate {
  let item;
  try {
    item = parseItem(value);
  } catch (cause) {
    throw new MalformedForwardedCertificateError('Client-Cert is not a Structured Field Byte Sequence (RFC 9440 §2.2)', { cause });
  }
  if (!isArrayBuffer(item[0])) throw new MalformedForwardedCertificateError('Client-Cert must be a Byte Sequence (:base64:)');
  const chain: X509Certificate[] = [];
  if (chainValue !== undefined && chainValue.trim() !== '') {
    let list;
    try {
      list = parseList(chainValue);
    } catch (cause) {
      throw new MalformedForwardedCertificateError('Client-Cert-Chain is not a Structured Field List (RFC 9440 §2.3)', { cause });
    }
    for (const member of list) {
      if (!isArrayBuffer(member[0])) throw new MalformedForwardedCertificateError('Client-Cert-Chain members must be Byte Sequences');
      chain.push(der(member[0], 'a Client-Cert-Chain member'));
    }
  }
  return { certificate: der(item[0], 'Client-Cert'), chain };
}

function decodeUri(value: string, header: string): string {
  try {
    return decodeURIComponent(value);
  } catch (cause) {
    throw new MalformedForwardedCertificateError(`${header} is not URL-encoded`, { cause });
  }
}

function readPemList(pem: string, header: string): ForwardedCertificate {
  let certs: X509Certificate[];
  try {
    certs = splitPemCertificates(pem);
  } catch (cause) {
    throw new MalformedForwardedCertificateError(`${header} holds an unreadable certificate`, { cause });
  }
  const [certificate, ...chain] = certs;
  if (certificate === undefined) throw new MalformedForwardedCertificateError(`${header} holds no PEM certificate`);
  return { certificate, chain };
}

/** Splits XFCC into elements of key/value pairs, honouring quoted values (with `\"` escapes). */
export function parseXfcc(value: string): Map<string, string>[] {
  const elements: Map<string, string>[] = [];
  let pairs = new Map<string, string>();
  let i = 0;
  const fail = (why: string): never => { throw new MalformedForwardedCertificateError(`X-Forwarded-Client-Cert: ${why} at position ${i}`); };
  while (i < value.length) {
    const eq = value.indexOf('=', i);
    if (eq === -1) fail('expected Key=value');
    const key = value.slice(i, eq).trim();
    if (!/^[A-Za-z]+$/.test(key)) fail(`invalid key "${key}"`);
    i = eq + 1;
    let v = '';
    if (value[i] === '"') {
      i += 1;
      for (;;) {
        if (i >= value.length) fail('unterminated quoted value');
        const ch = value[i]!;
        if (ch === '\\' && i + 1 < value.length) { v += value[i + 1]; i += 2; continue; }
        if (ch === '"') { i += 1; break; }
        v += ch;
        i += 1;
      }
    } else {
      while (i < value.length && value[i] !== ';' && value[i] !== ',') { v += value[i]; i += 1; }
    }
    pairs.set(key.toLowerCase(), v);
    while (value[i] === ' ') i += 1;
    if (value[i] === ';') {
      i += 1;
    } else if (value[i] === ',' || i >= value.length) {
      elements.push(pairs);
      pairs = new Map();
      i += 1;
    } else {
      fail('expected ";" or ","');
    }
    while (value[i] === ' ') i += 1;
  }
  return elements;
}

function readXfcc(value: string): ForwardedCertificate | undefined {
  // The last element is the one the nearest proxy (our gateway) appended.
  const element = parseXfcc(value).at(-1);
  const cert = element?.get('cert');
  if (element === undefined || cert === undefined || cert === '') return undefined;
  const leaf = readPemList(decodeUri(cert, 'X-Forwarded-Client-Cert Cert'), 'X-Forwarded-Client-Cert Cert');
  const chainValue = element.get('chain');
  if (chainValue === undefined || chainValue === '') return leaf;
  const chain = readPemList(decodeUri(chainValue, 'X-Forwarded-Client-Cert Chain'), 'X-Forwarded-Client-Cert Chain');
  // Envoy's Chain includes the leaf first; keep only the issuers.
  const issuers = [chain.certificate, ...chain.chain].filter((c) => !c.raw.equals(leaf.certificate.raw));
  return { certificate: leaf.certificate, chain: issuers };
}

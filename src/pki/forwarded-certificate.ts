import { X509Certificate } from 'node:crypto';
import { isInnerList, parseItem, parseList } from 'structured-headers';

/** Forms of the forwarded client certificate an mTLS-terminating gateway can send. */
export const FORWARDED_CERT_FORMATS = ['rfc9440', 'nginx', 'envoy-xfcc'] as const;
export type ForwardedCertFormat = (typeof FORWARDED_CERT_FORMATS)[number];

/*
 * The client certificate as an mTLS-terminating gateway forwards it. Three forms are in use:
 * - RFC 9440: `Client-Cert` is a Structured Field Byte Sequence (RFC 8941 §3.3.5) of the DER
 *   certificate and `Client-Cert-Chain` a List of them; read with the structured-headers library.
 * - nginx: `X-SSL-Client-Cert: $ssl_client_escaped_cert`, the PEM certificate URL-encoded.
 * - Envoy: `X-Forwarded-Client-Cert` (XFCC), elements separated by `,`, each element `Key=value`
 *   pairs separated by `;`, a value double-quoted when it holds `,`, `;` or `=`, with `\"` for a
 *   quote inside. No maintained npm package reads XFCC (the few that exist split on `,` and `;`
 *   without honouring quotes, which the URL-encoded `Cert` and the `Subject` DN need), so a small
 *   tokenizer for exactly that grammar is here, refusing anything outside it.
 * Whether a header is believed at all is the caller's decision (trusted proxy addresses only); this
 * module only reads it, strictly, because a header that half-parses must not become a certificate.
 */

/** A certificate and the intermediates sent with it (leaf first, then issuers; may be empty). */
export interface ForwardedCertificate {
  certificate: X509Certificate;
  chain: X509Certificate[];
}

/** The header was present but is not a well-formed certificate in the configured format. */
export class MalformedForwardedCertificateError extends Error {
  override readonly name = 'MalformedForwardedCertificateError';
}

/** The header carrying the certificate in each format (lowercase, as node presents them). */
export const FORWARDED_CERT_HEADERS: Readonly<Record<ForwardedCertFormat, string>> = {
  rfc9440: 'client-cert',
  nginx: 'x-ssl-client-cert',
  'envoy-xfcc': 'x-forwarded-client-cert',
};

/** RFC 9440 §2.3 chain header. */
const CLIENT_CERT_CHAIN = 'client-cert-chain';

/** Every header that could carry a forwarded certificate, to notice one from an untrusted sender. */
export const ALL_FORWARDED_CERT_HEADERS: readonly string[] = [...Object.values(FORWARDED_CERT_HEADERS), CLIENT_CERT_CHAIN];

/**
 * A chain longer than this is refused outright: it bounds the certificates parsed and the path
 * search per request (open banking chains have one or two intermediates).
 */
const MAX_FORWARDED_CHAIN = 8;

/** Request headers as node gives them: `req.headers`, or better `req.headersDistinct`. */
export type ForwardedHeaders = Record<string, string | string[] | undefined>;

/** Field lines of a header; `req.headersDistinct` keeps repeated lines apart, `req.headers` joins them. */
function lines(headers: ForwardedHeaders, name: string): string[] {
  const value = headers[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** A header that must appear once (a second line would be a second, competing certificate). */
function single(headers: ForwardedHeaders, name: string): string | undefined {
  const values = lines(headers, name);
  if (values.length > 1) throw new MalformedForwardedCertificateError(`${name} appears more than once`);
  return values[0];
}

/** A list-valued header: repeated lines are one list (RFC 9110 §5.3). */
function joined(headers: ForwardedHeaders, name: string): string | undefined {
  const values = lines(headers, name);
  return values.length === 0 ? undefined : values.join(',');
}

/**
 * Reads the forwarded certificate of `format` from the request headers: undefined when the header
 * is absent or empty (the gateway saw no certificate), the certificate and chain when well-formed;
 * throws `MalformedForwardedCertificateError` otherwise.
 */
export function readForwardedCertificate(format: ForwardedCertFormat, headers: ForwardedHeaders): ForwardedCertificate | undefined {
  const name = FORWARDED_CERT_HEADERS[format];
  const raw = format === 'envoy-xfcc' ? joined(headers, name) : single(headers, name);
  if (raw === undefined || raw.trim() === '') return undefined;
  switch (format) {
    case 'rfc9440':
      return readRfc9440(raw, joined(headers, CLIENT_CERT_CHAIN));
    case 'nginx':
      return readEscapedPem(raw, 'X-SSL-Client-Cert');
    case 'envoy-xfcc':
      return readXfcc(raw);
  }
}

function isArrayBuffer(value: unknown): value is ArrayBuffer {
  // Not `instanceof`: the library may build it in another realm (as under a test runner's VM).
  return Object.prototype.toString.call(value) === '[object ArrayBuffer]';
}

function fromDer(bytes: ArrayBuffer, what: string): X509Certificate {
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
  if (!isArrayBuffer(item[0])) throw new MalformedForwardedCertificateError('Client-Cert must be a Byte Sequence (:base64:) (RFC 9440 §2.2)');
  const certificate = fromDer(item[0], 'Client-Cert');
  const chain: X509Certificate[] = [];
  if (chainValue !== undefined && chainValue.trim() !== '') {
    let list;
    try {
      list = parseList(chainValue);
    } catch (cause) {
      throw new MalformedForwardedCertificateError('Client-Cert-Chain is not a Structured Field List (RFC 9440 §2.3)', { cause });
    }
    if (list.length > MAX_FORWARDED_CHAIN)
      throw new MalformedForwardedCertificateError(`Client-Cert-Chain holds more than ${MAX_FORWARDED_CHAIN} certificates`);
    for (const [index, member] of list.entries()) {
      if (isInnerList(member) || !isArrayBuffer(member[0])) {
        throw new MalformedForwardedCertificateError(`Client-Cert-Chain member ${index + 1} is not a Byte Sequence (RFC 9440 §2.3)`);
      }
      chain.push(fromDer(member[0], `Client-Cert-Chain member ${index + 1}`));
    }
  }
  return { certificate, chain };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----/g;

/** PEM text that holds certificates and nothing else but whitespace (RFC 7468 §5). */
function readPemCertificates(pem: string, what: string): X509Certificate[] {
  const certificates: X509Certificate[] = [];
  const rest = pem.replace(PEM_CERTIFICATE, (block) => {
    try {
      certificates.push(new X509Certificate(block));
    } catch (cause) {
      throw new MalformedForwardedCertificateError(`${what} holds an unreadable certificate`, { cause });
    }
    return '';
  });
  if (rest.trim() !== '') throw new MalformedForwardedCertificateError(`${what} holds something other than PEM certificates`);
  if (certificates.length === 0) throw new MalformedForwardedCertificateError(`${what} holds no PEM certificate`);
  if (certificates.length > MAX_FORWARDED_CHAIN + 1)
    throw new MalformedForwardedCertificateError(`${what} holds more than ${MAX_FORWARDED_CHAIN + 1} certificates`);
  return certificates;
}

function urlDecode(value: string, what: string): string {
  try {
    return decodeURIComponent(value);
  } catch (cause) {
    throw new MalformedForwardedCertificateError(`${what} is not URL-encoded`, { cause });
  }
}

/** nginx `$ssl_client_escaped_cert`: the leaf's PEM, URL-encoded; extra certificates are a chain. */
function readEscapedPem(value: string, what: string): ForwardedCertificate {
  const [certificate, ...chain] = readPemCertificates(urlDecode(value, what), what);
  return { certificate: certificate!, chain };
}

/** One XFCC element: each key (lowercase; XFCC keys are case-insensitive) with its values in order. */
export type XfccElement = Map<string, string[]>;

/**
 * Tokenizes an XFCC value into its elements (Envoy's documented grammar):
 *   value   = element *( "," element )
 *   element = pair *( ";" pair )
 *   pair    = key "=" ( quoted / bare )
 *   key     = 1*ALPHA
 *   quoted  = DQUOTE *( any char but DQUOTE or "\" / "\" DQUOTE / "\" other-char ) DQUOTE
 *   bare    = *( any char but "," ";" "=" DQUOTE )
 * Spaces are allowed around the separators (proxies that join header lines add them). A backslash
 * escapes only a quote, as Envoy writes it; other backslashes (`Subject="CN=a\,b"`) are kept.
 */
export function parseXfcc(value: string): XfccElement[] {
  const elements: XfccElement[] = [];
  let element: XfccElement = new Map();
  let i = 0;
  const fail = (why: string): never => {
    throw new MalformedForwardedCertificateError(`X-Forwarded-Client-Cert: ${why} at position ${i}`);
  };
  const skipSpaces = () => {
    while (value[i] === ' ' || value[i] === '\t') i += 1;
  };

  skipSpaces();
  if (i >= value.length) fail('empty value');
  for (;;) {
    const keyStart = i;
    while (i < value.length && /[A-Za-z]/.test(value[i]!)) i += 1;
    const key = value.slice(keyStart, i);
    if (key === '') fail('expected a key');
    if (value[i] !== '=') fail(`expected "=" after ${key}`);
    i += 1;
    let v = '';
    if (value[i] === '"') {
      i += 1;
      for (;;) {
        if (i >= value.length) fail('unterminated quoted value');
        const ch = value[i]!;
        if (ch === '"') {
          i += 1;
          break;
        }
        if (ch === '\\' && value[i + 1] === '"') {
          v += '"';
          i += 2;
          continue;
        }
        v += ch;
        i += 1;
      }
    } else {
      while (i < value.length && !',;'.includes(value[i]!)) {
        if (value[i] === '=' || value[i] === '"') fail(`'${value[i]}' in an unquoted value`);
        v += value[i];
        i += 1;
      }
      v = v.trimEnd();
    }
    const k = key.toLowerCase();
    element.set(k, [...(element.get(k) ?? []), v]);
    skipSpaces();
    if (i >= value.length) break;
    const separator = value[i];
    if (separator !== ';' && separator !== ',') fail('expected ";" or ","');
    i += 1;
    if (separator === ',') {
      elements.push(element);
      element = new Map();
    }
    skipSpaces();
    if (i >= value.length) fail(`value ends with "${separator}"`);
  }
  elements.push(element);
  return elements;
}

function onlyValue(element: XfccElement, key: string): string | undefined {
  const values = element.get(key);
  if (values === undefined) return undefined;
  if (values.length > 1) throw new MalformedForwardedCertificateError(`X-Forwarded-Client-Cert: ${key} appears more than once in an element`);
  return values[0];
}

function readXfcc(value: string): ForwardedCertificate | undefined {
  // Each proxy appends its element: the last one is what the nearest proxy, our gateway, saw.
  // Elements from proxies further away are the client's to forge and are never read.
  const element = parseXfcc(value).at(-1)!;
  const cert = onlyValue(element, 'cert');
  if (cert === undefined || cert === '') return undefined;
  const leaf = readEscapedPem(cert, 'X-Forwarded-Client-Cert Cert');
  if (leaf.chain.length > 0) throw new MalformedForwardedCertificateError('X-Forwarded-Client-Cert Cert holds more than one certificate');
  const chainValue = onlyValue(element, 'chain');
  if (chainValue === undefined || chainValue === '') return leaf;
  const chain = readPemCertificates(urlDecode(chainValue, 'X-Forwarded-Client-Cert Chain'), 'X-Forwarded-Client-Cert Chain');
  // Envoy's Chain starts with the leaf itself; keep only the issuers.
  return { certificate: leaf.certificate, chain: chain.filter((c) => !c.raw.equals(leaf.certificate.raw)) };
}

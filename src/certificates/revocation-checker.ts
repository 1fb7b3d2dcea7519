import type { X509Certificate as NodeX509 } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import * as pkijs from 'pkijs';
import * as x509 from '../pki/x509.ts';
import { certificateThumbprint } from '../pki/certificate-chain.ts';
import { perCertificate } from '../pki/per-certificate.ts';

/*
 * Is this certificate revoked? Asked of the CA itself: OCSP (RFC 6960) at the responder named in the
 * certificate's Authority Information Access, falling back to the CRLs (RFC 5280 §5) of its CRL
 * distribution points. Every answer is authenticated — the OCSP response must be signed by the
 * issuer or a responder it delegated to (pkijs checks the RFC 6960 §4.2.2.2 authorisation), the CRL
 * by the issuer (@peculiar/x509) — and fresh. Answers are cached until their nextUpdate.
 */

export interface RevocationVerdict {
  status: 'good' | 'revoked' | 'unknown';
  source: 'ocsp' | 'crl' | 'none';
  /** Plain words: why unknown, or what the CA said. */
  detail: string;
  revokedAt?: Date;
  reason?: string;
}

export interface RevocationChecker {
  check(certificate: NodeX509, issuer: NodeX509, pointers: { ocspUrls: string[]; crlUrls: string[] }): Promise<RevocationVerdict>;
}

export interface RevocationCheckerOptions {
  /** Per request to a responder or CRL server. */
  timeoutMs?: number;
  /**
   * The longest an answer is reused, even when its nextUpdate is later: the re-check interval, so
   * that each periodic check learns of a revocation the CA published since the last one.
   */
  defaultCacheSeconds?: number;
  now?: () => Date;
  /**
   * Extra CAs to trust for https revocation pointers, besides the system's (the sandbox server CA,
   * so the sandbox's own OCSP responder and CRL are reachable).
   */
  extraCaPem?: string;
}

/** RFC 6960 §4.2.2.1: a response produced further in the future than this is not accepted. */
const CLOCK_SKEW_MS = 5 * 60_000;
/** CRLs above this size are not downloaded: a hostile distribution point must not exhaust memory. */
const MAX_CRL_BYTES = 10 * 1024 * 1024;

const CRL_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'unused',
  'removeFromCRL',
  'privilegeWithdrawn',
  'aACompromise',
];

export function createRevocationChecker(options: RevocationCheckerOptions = {}): RevocationChecker {
  const timeoutMs = options.timeoutMs ?? 5000;
  const defaultCacheMs = (options.defaultCacheSeconds ?? 300) * 1000;
  const now = options.now ?? (() => new Date());
  const ca = options.extraCaPem === undefined ? undefined : [...rootCertificates, options.extraCaPem];
  const verdicts = new Map<string, { verdict: RevocationVerdict; until: number }>();
  const crls = new Map<string, { crl: x509.X509Crl; until: number }>();
  const crypto = new pkijs.CryptoEngine({ name: 'node', crypto: globalThis.crypto });
  // The certificate and its issuer as pkijs and @peculiar/x509 read them, decoded once per distinct
  // certificate: the issuer is the same CA for most checks, and an unknown verdict is asked again on
  // the next check. Only the parse is kept; the verdict's own cache (above) has its own lifetime.
  const pkijsOf = perCertificate((c) => pkijs.Certificate.fromBER(c.raw));
  const x509Of = perCertificate((c) => new x509.X509Certificate(c.raw));

  /** One HTTP(S) exchange with a deadline and a size cap; no redirects (RFC 5019 §5 responders do not need them). */
  const download = (url: string, init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: Uint8Array }): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const target = new URL(url);
      const send = target.protocol === 'https:' ? httpsRequest : target.protocol === 'http:' ? httpRequest : undefined;
      if (send === undefined) return reject(new Error(`${url} is not an http(s) URL`));
      const req = send(target, { method: init.method, headers: init.headers ?? {}, timeout: timeoutMs, ...(ca === undefined ? {} : { ca }) }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`${url} answered HTTP ${res.statusCode}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_CRL_BYTES) {
            req.destroy(new Error(`${url} sent more than ${MAX_CRL_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${url} did not answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(init.body);
    });

  const askOcsp = async (url: string, cert: pkijs.Certificate, issuer: pkijs.Certificate): Promise<{ verdict: RevocationVerdict; until: number }> => {
    const request = new pkijs.OCSPRequest();
    await request.createForCertificate(cert, { hashAlgorithm: 'SHA-256', issuerCertificate: issuer }, crypto);
    const body = await download(url, {
      method: 'POST',
      headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
      body: new Uint8Array(request.toSchema(true).toBER()),
    });
    const response = pkijs.OCSPResponse.fromBER(body);
    const status = response.responseStatus.valueBlock.valueDec;
    if (status !== 0 || response.responseBytes === undefined) throw new Error(`the OCSP responder answered status ${status}`);
    const basic = pkijs.BasicOCSPResponse.fromBER(response.responseBytes.response.valueBlock.valueHexView);
    // RFC 6960 §4.2.2.2: the issuing CA itself is authorised, and need not attach its certificate
    // (pkijs wants a candidate in `certs`, so the known issuer is offered); a delegated responder
    // must be attached, chain to the issuer and carry id-kp-OCSPSigning.
    basic.certs = [...(basic.certs ?? []), issuer];
    if (!(await basic.verify({ trustedCerts: [issuer], issuerCerts: [issuer], trustedResponders: [issuer] }, crypto))) {
      throw new Error('the OCSP response signature does not verify');
    }
    const { isForCertificate, status: certStatus } = await basic.getCertificateStatus(cert, issuer, crypto);
    if (!isForCertificate) throw new Error('the OCSP response is about another certificate');
    const single = basic.tbsResponseData.responses[0]!;
    const at = now().getTime();
    if (single.thisUpdate.getTime() > at + CLOCK_SKEW_MS) throw new Error('the OCSP response is dated in the future');
    if (single.nextUpdate !== undefined && single.nextUpdate.getTime() < at) throw new Error('the OCSP response is out of date');
    const until = Math.min(single.nextUpdate?.getTime() ?? at + defaultCacheMs, at + defaultCacheMs);
    if (certStatus === 1) {
      return { verdict: { status: 'revoked', source: 'ocsp', detail: `revoked according to the OCSP responder ${url}` }, until: Number.POSITIVE_INFINITY };
    }
    if (certStatus === 0) return { verdict: { status: 'good', source: 'ocsp', detail: `good according to ${url}` }, until };
    throw new Error('the OCSP responder does not know the certificate');
  };

  const crlFor = async (url: string, issuer: x509.X509Certificate): Promise<x509.X509Crl> => {
    const cached = crls.get(url);
    if (cached !== undefined && cached.until > now().getTime()) return cached.crl;
    const crl = new x509.X509Crl(await download(url, { method: 'GET' }));
    if (crl.issuer !== issuer.subject) throw new Error(`the CRL at ${url} is issued by ${crl.issuer}, not ${issuer.subject}`);
    if (!(await crl.verify({ publicKey: issuer.publicKey }))) throw new Error(`the CRL at ${url} is not signed by the issuer`);
    if (crl.nextUpdate !== undefined && crl.nextUpdate.getTime() < now().getTime()) throw new Error(`the CRL at ${url} is out of date`);
    crls.set(url, { crl, until: Math.min(crl.nextUpdate?.getTime() ?? Number.POSITIVE_INFINITY, now().getTime() + defaultCacheMs) });
    return crl;
  };

  const askCrl = async (url: string, cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<RevocationVerdict> => {
    const crl = await crlFor(url, issuer);
    const entry = crl.findRevoked(cert);
    if (entry === null) return { status: 'good', source: 'crl', detail: `not on the CRL at ${url}` };
    const reason = entry.reason === undefined ? undefined : CRL_REASONS[entry.reason];
    return {
      status: 'revoked',
      source: 'crl',
      detail: `listed on the CRL at ${url}${reason === undefined ? '' : ` (${reason})`}`,
      revokedAt: entry.revocationDate,
      ...(reason === undefined ? {} : { reason }),
    };
  };

  return {
    async check(certificate, issuer, pointers) {
      const key = certificateThumbprint(certificate);
      const cached = verdicts.get(key);
      if (cached !== undefined && cached.until > now().getTime()) return cached.verdict;
      const problems: string[] = [];
      for (const url of pointers.ocspUrls) {
        try {
          const answer = await askOcsp(url, pkijsOf(certificate), pkijsOf(issuer));
          verdicts.set(key, answer);
          return answer.verdict;
        } catch (err) {
          problems.push(`OCSP ${url}: ${(err as Error).message}`);
        }
      }
      for (const url of pointers.crlUrls) {
        try {
          const verdict = await askCrl(url, x509Of(certificate), x509Of(issuer));
          verdicts.set(key, {
            verdict,
            until: verdict.status === 'revoked' ? Number.POSITIVE_INFINITY : (crls.get(url)?.until ?? now().getTime() + defaultCacheMs),
          });
          return verdict;
        } catch (err) {
          problems.push(`CRL ${url}: ${(err as Error).message}`);
        }
      }
      return {
        status: 'unknown',
        source: 'none',
        detail: problems.length === 0 ? 'the certificate names no OCSP responder and no CRL' : problems.join('; '),
      };
    },
  };
}

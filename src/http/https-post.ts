import { request } from 'node:https';
import { isIP } from 'node:net';
import { RefusedTargetError, type OutboundTargetGuard } from './outbound-target-guard.ts';

/*
 * One HTTPS POST to a TPP's endpoint (a certificate expiry notice, a CIBA ping): any answer the
 * caller accepts resolves; another status, no answer within the timeout, or no connection rejects
 * with a reason worth logging. Redirects are not followed; the whole exchange is timed, so an
 * endpoint that trickles bytes is cut off too.
 */

export class HttpsPostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HttpsPostError';
  }
}

/** How much of a refusal's body is kept as the reason (the receiver's error JSON). */
const REASON_BYTES = 300;

export interface HttpsPost {
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  /** Trusted CAs, when not only the system's. */
  ca?: string[];
  /** A client certificate and key to present (mTLS). */
  clientCertificate?: { cert: string; key: string };
  accepted: (status: number) => boolean;
  /** Refuses addresses the endpoint may not be (outbound-target-guard.ts). */
  guard?: OutboundTargetGuard;
}

export function postHttps(endpoint: string, post: HttpsPost): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const url = new URL(endpoint);
    if (url.protocol !== 'https:') {
      reject(new HttpsPostError(`${url.protocol} endpoints are not used; only https`));
      return;
    }
    // An address in the URL is connected to without a lookup: checked here; a name, at its lookup.
    const literal = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const refused = isIP(literal) === 0 ? undefined : post.guard?.refusal(literal);
    if (refused !== undefined) {
      reject(new HttpsPostError(`refused: ${refused}`));
      return;
    }
    const req = request(
      url,
      {
        method: 'POST',
        headers: { ...post.headers, 'content-length': Buffer.byteLength(post.body) },
        ...(post.ca === undefined ? {} : { ca: post.ca }),
        ...(post.guard === undefined ? {} : { lookup: post.guard.lookup }),
        ...(post.clientCertificate === undefined ? {} : post.clientCertificate),
        agent: false,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let reason = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (reason.length < REASON_BYTES) reason += chunk;
        });
        res.on('end', () => {
          clearTimeout(timer);
          if (post.accepted(status)) resolve();
          else reject(new HttpsPostError(`the endpoint answered HTTP ${status}${reason.trim() === '' ? '' : `: ${reason.slice(0, REASON_BYTES).trim()}`}`));
        });
        res.on('error', (err) => reject(new HttpsPostError(err.message)));
      },
    );
    const timer = setTimeout(() => req.destroy(new HttpsPostError(`no answer within ${post.timeoutMs} ms`)), post.timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(
        err instanceof HttpsPostError
          ? err
          : new HttpsPostError(err instanceof RefusedTargetError ? `refused: ${err.message}` : `cannot reach the endpoint: ${err.message}`),
      );
    });
    req.end(post.body);
  });
}

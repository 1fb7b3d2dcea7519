import { rootCertificates } from 'node:tls';
import { request } from 'node:https';

/*
 * Push delivery of a Security Event Token (RFC 8935 §2): an HTTPS POST of the JWT as
 * application/secevent+jwt. Any 2xx is delivered (§2.2 asks for 202); anything else, no answer
 * within the timeout, or no connection is a failed attempt with a reason. Redirects are not followed.
 */

export class NoticeDeliveryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoticeDeliveryError';
  }
}

export interface NoticeDelivery {
  /** Resolves when the receiver accepted the token; rejects with a NoticeDeliveryError saying why not. */
  post(endpoint: string, token: string): Promise<void>;
}

/** How much of a refusal's body is kept as the reason (the receiver's error JSON, RFC 8935 §2.3). */
const REASON_BYTES = 300;

export function createHttpsNoticeDelivery(options: { timeoutMs: number; caPem?: string }): NoticeDelivery {
  const ca = options.caPem === undefined ? undefined : [...rootCertificates, options.caPem];
  return {
    post: (endpoint, token) => new Promise<void>((resolve, reject) => {
      const url = new URL(endpoint);
      if (url.protocol !== 'https:') {
        reject(new NoticeDeliveryError(`${url.protocol} endpoints are not used; only https`));
        return;
      }
      const req = request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/secevent+jwt', accept: 'application/json', 'content-length': Buffer.byteLength(token) },
        ...(ca === undefined ? {} : { ca }),
        agent: false,
      }, (res) => {
        const status = res.statusCode ?? 0;
        let reason = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => { if (reason.length < REASON_BYTES) reason += chunk; });
        res.on('end', () => {
          clearTimeout(timer);
          if (status >= 200 && status < 300) resolve();
          else reject(new NoticeDeliveryError(`the endpoint answered HTTP ${status}${reason.trim() === '' ? '' : `: ${reason.slice(0, REASON_BYTES).trim()}`}`));
        });
        res.on('error', (err) => reject(new NoticeDeliveryError(err.message)));
      });
      // The whole exchange, not just an idle socket: an endpoint that trickles bytes is cut off too.
      const timer = setTimeout(() => req.destroy(new NoticeDeliveryError(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err instanceof NoticeDeliveryError ? err : new NoticeDeliveryError(`cannot reach the endpoint: ${err.message}`));
      });
      req.end(token);
    }),
  };
}

import { rootCertificates } from 'node:tls';
import { HttpsPostError, postHttps } from '../http/https-post.ts';
import type { OutboundTargetGuard } from '../http/outbound-target-guard.ts';

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

/** `guard` refuses endpoints on addresses a TPP may not have Moat post to (outbound-target-guard.ts). */
export function createHttpsNoticeDelivery(options: { timeoutMs: number; caPem?: string; guard?: OutboundTargetGuard }): NoticeDelivery {
  const ca = options.caPem === undefined ? undefined : [...rootCertificates, options.caPem];
  return {
    post: (endpoint, token) =>
      postHttps(endpoint, {
        headers: { 'content-type': 'application/secevent+jwt', accept: 'application/json' },
        body: token,
        timeoutMs: options.timeoutMs,
        ...(ca === undefined ? {} : { ca }),
        ...(options.guard === undefined ? {} : { guard: options.guard }),
        accepted: (status) => status >= 200 && status < 300,
      }).catch((err: unknown) => {
        throw err instanceof HttpsPostError ? new NoticeDeliveryError(err.message) : err;
      }),
  };
}

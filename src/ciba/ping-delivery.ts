import { rootCertificates } from 'node:tls';
import type Provider from 'oidc-provider';
import { postHttps } from '../http/https-post.ts';
import type { OutboundTargetGuard } from '../http/outbound-target-guard.ts';
import type { Logger } from '../observability/logger.ts';

/*
 * Ping mode (CIBA Core §10.2): when the customer has decided, the TPP's client notification endpoint
 * is called with the bearer client_notification_token it sent and `{"auth_req_id": …}`. Moat makes
 * every call, once the result is stored (provider/internals.ts, saveBackchannelResult, says why not
 * oidc-provider): in the background, so the customer's approval never waits on the TPP, with the
 * configured CA and the outbound guard (no private address in production). When a call fails, Moat
 * calls again with back-off — base, 2×base, 4×base … — up to `maxAttempts` calls in all, and logs
 * each failure. The TPP is never told of a failure by an error: the result stays ready at the token
 * endpoint until the request expires, so it can always poll.
 */

export interface PingDeliveryOptions {
  provider: Provider;
  logger: Logger;
  maxAttempts: number;
  retryBaseMs: number;
  timeoutMs: number;
  /** CAs trusted for notification endpoints beside the system's. */
  caPem?: string;
  /** Refuses non-public addresses (production), as for expiry notices. */
  guard?: OutboundTargetGuard;
}

type RequestWithResult = InstanceType<Provider['BackchannelAuthenticationRequest']>;

export interface PingDelivery {
  /** Notifies a ping-mode client that the result of `request` (already stored) is ready; nothing for a poll-mode client. */
  deliver(request: RequestWithResult): void;
  /** Stops the retries still waiting (the process is stopping). */
  stop(): void;
  /** Resolves when no retry is waiting or running (tests, shutdown). */
  settled(): Promise<void>;
}

export function createPingDelivery(options: PingDeliveryOptions): PingDelivery {
  const { provider, logger } = options;
  const ca = options.caPem === undefined ? undefined : [...rootCertificates, options.caPem];
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<Promise<void>>();

  // CIBA Core §10.2: the client answers 204 (oidc-provider also accepts 200).
  const post = (endpoint: string, token: string, authReqId: string) =>
    postHttps(endpoint, {
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ auth_req_id: authReqId }),
      timeoutMs: options.timeoutMs,
      ...(ca === undefined ? {} : { ca }),
      accepted: (status) => status === 204 || status === 200,
      ...(options.guard === undefined ? {} : { guard: options.guard }),
    });

  const attempt = async (request: RequestWithResult, number: number) => {
    const clientId = request.clientId!;
    try {
      const client = await provider.Client.find(clientId);
      const endpoint = client?.metadata().backchannel_client_notification_endpoint;
      const token = (request.params as { client_notification_token?: unknown } | undefined)?.client_notification_token;
      if (typeof endpoint !== 'string' || typeof token !== 'string') {
        logger.warn(
          { event: 'ciba.ping_abandoned', outcome: 'ciba_ping_no_endpoint', clientId, attempt: number },
          'ping notification abandoned: the client has no notification endpoint now',
        );
        return;
      }
      await post(endpoint, token, request.jti);
      logger.info({ event: 'ciba.ping_delivered', outcome: 'ciba_ping_delivered', clientId, attempt: number }, 'ping notification delivered');
    } catch (err) {
      failed(request, number, err);
    }
  };

  const start = (request: RequestWithResult, number: number) => {
    const run = attempt(request, number).finally(() => running.delete(run));
    running.add(run);
  };

  const failed = (request: RequestWithResult, number: number, err: unknown) => {
    const clientId = request.clientId!;
    const reason = err instanceof Error ? err.message : String(err);
    if (number >= options.maxAttempts) {
      logger.warn(
        { event: 'ciba.ping_abandoned', outcome: 'ciba_ping_failed', clientId, attempt: number, reason },
        'ping notification given up; the result waits at the token endpoint',
      );
      return;
    }
    const waitMs = options.retryBaseMs * 2 ** (number - 1);
    logger.warn(
      { event: 'ciba.ping_failed', outcome: 'ciba_ping_failed', clientId, attempt: number, reason, retryInMs: waitMs },
      'ping notification failed; retrying',
    );
    const timer = setTimeout(() => {
      timers.delete(timer);
      start(request, number + 1);
    }, waitMs);
    timer.unref();
    timers.add(timer);
  };

  const deliver = async (request: RequestWithResult) => {
    try {
      const client = await provider.Client.find(request.clientId!);
      if (client?.metadata().backchannel_token_delivery_mode === 'ping') await attempt(request, 1);
    } catch (err) {
      failed(request, 1, err);
    }
  };

  return {
    deliver(request) {
      const run = deliver(request).finally(() => running.delete(run));
      running.add(run);
    },
    stop() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
    async settled() {
      while (timers.size > 0 || running.size > 0) {
        await Promise.all(running);
        if (timers.size > 0) await new Promise((done) => setTimeout(done, 10));
      }
    },
  };
}

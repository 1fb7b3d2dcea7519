import { randomUUID } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import type { JwsSigner } from '../keys/jws-signer.ts';
import type { Logger } from '../observability/logger.ts';
import type { CertificateRegistry, RegisteredCertificate } from './certificate-registry.ts';
import type { ExpiryNotice, ExpiryNoticeStore } from './expiry-notice-store.ts';
import type { NoticeDelivery } from './notice-delivery.ts';

/*
 * TPPs told before their certificates expire. When the certificate monitor sees a certificate cross
 * a warning horizon, a notice is raised for each client using it (once: the store's key is the
 * certificate, client and horizon, whichever instance gets there first). Notices are delivered in
 * the background to the client's `moat_notification_uri` as a Security Event Token (RFC 8417)
 * signed with Moat's published keys, by push (RFC 8935); a failing or hanging endpoint is retried
 * with back-off and never holds anything else up. The operator sees which TPPs have not renewed.
 */

/** The event a notice carries (RFC 8417 §2.2: events are named by URI). */
export const CERTIFICATE_EXPIRING_EVENT = 'urn:moat:secevent:tpp-certificate-expiring';
/** RFC 8417 §2.3: the explicit type of a SET. */
export const SECEVENT_TYP = 'secevent+jwt';
/** The client metadata naming where notices go (RFC 7591 §2 allows extensions). */
export const NOTIFICATION_URI_METADATA = 'moat_notification_uri';

/** Why a `moat_notification_uri` is refused at registration; undefined when it is fine. */
export function notificationUriProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length > 2000) return 'must be at most 2000 characters';
  if (!URL.canParse(value)) return 'must be an absolute https URL';
  const url = new URL(value);
  if (url.protocol !== 'https:') return 'must be an https URL: notices are sent only over TLS';
  if (value.includes('#')) return 'must not have a fragment';
  if (url.username !== '' || url.password !== '') return 'must not carry credentials in the URL';
  return undefined;
}

/** Retries never wait longer than this, however many have failed. */
const MAX_BACKOFF_SECONDS = 6 * 3600;
const CLAIM_BATCH = 20;

export interface UnrenewedCertificate {
  thumbprint: string;
  orgId: string;
  subjectDn: string;
  usage: RegisteredCertificate['usage'];
  notAfter: Date;
  daysLeft: number;
  /** The clients still on this certificate without a later one registered, with what they were told. */
  clients: { clientId: string; notices: ExpiryNotice[] }[];
}

export interface ExpiryNotices {
  /** Raises the notices for a certificate that crossed a horizon (the monitor calls this). */
  raise(certificate: RegisteredCertificate, horizonDays: number, daysLeft: number): Promise<void>;
  /** One delivery pass over the due notices. */
  deliverDue(): Promise<{ delivered: number; failed: number }>;
  /** Active certificates expiring before `before` whose clients have registered no later one. */
  unrenewed(before: Date): Promise<UnrenewedCertificate[]>;
  list(filter: { clientIds?: string[]; thumbprints?: string[] }): Promise<ExpiryNotice[]>;
  start(): void;
  /** Stops the timer and waits for a pass under way (bounded by the delivery timeout). */
  stop(): Promise<void>;
}

export interface ExpiryNoticeDeps {
  store: ExpiryNoticeStore;
  registry: CertificateRegistry;
  signer: JwsSigner;
  delivery: NoticeDelivery;
  /** The client's registered notification endpoint, if any. */
  endpointOf(clientId: string): Promise<string | undefined>;
  issuer: string;
  logger: Logger;
  maxAttempts: number;
  retryBaseSeconds: number;
  intervalSeconds: number;
  /** How long one attempt may take; a claim outlives it so no other instance retries meanwhile. */
  timeoutMs: number;
  now?: () => Date;
  /** Where moat_certificate_expiry_notices_total is registered. */
  metrics?: Registry;
}

/** What became of one delivery attempt: delivered, failed and to be retried, or failed for good. */
export type NoticeAttemptOutcome = 'delivered' | 'retry' | 'failed';

/** The wait before the attempt after `attempts` failed ones: doubling from the base, capped. */
export function backoffSeconds(attempts: number, baseSeconds: number): number {
  return Math.min(baseSeconds * 2 ** Math.max(0, attempts - 1), MAX_BACKOFF_SECONDS);
}

/** The Security Event Token of a notice (RFC 8417 §2.2), for the client it is addressed to. */
export function expiryNoticeClaims(issuer: string, notice: ExpiryNotice, certificate: RegisteredCertificate, now: Date): Record<string, unknown> {
  return {
    iss: issuer,
    aud: notice.clientId,
    iat: Math.floor(now.getTime() / 1000),
    jti: notice.jti,
    // RFC 9493 subject identifier: the client the certificate is registered for.
    sub_id: { format: 'opaque', id: notice.clientId },
    events: {
      [CERTIFICATE_EXPIRING_EVENT]: {
        'x5t#S256': certificate.thumbprint,
        subject_dn: certificate.subjectDn,
        serial: certificate.serial,
        usage: certificate.usage,
        not_after: Math.floor(certificate.notAfter.getTime() / 1000),
        days_left: notice.daysLeft,
        horizon_days: notice.horizonDays,
        // RFC 7592 §2.2: the same registration, updated over mTLS with the next certificate.
        renew_at: `${issuer.replace(/\/$/, '')}/register/${encodeURIComponent(notice.clientId)}`,
      },
    },
  };
}

export function createExpiryNotices(deps: ExpiryNoticeDeps): ExpiryNotices {
  const { store, registry, logger } = deps;
  const now = deps.now ?? (() => new Date());
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  // Alert on `failed` (a TPP that was never told) and on a rising share of `retry`.
  const counted = new Counter<'outcome'>({
    name: 'moat_certificate_expiry_notices_total',
    help: 'Expiry notice delivery attempts to TPP endpoints, by outcome: delivered, retry (failed, tried again later), failed (given up)',
    labelNames: ['outcome'] as const,
    registers: deps.metrics === undefined ? [] : [deps.metrics],
  });
  // Zero from the start, so a dashboard shows 0 rather than no series.
  for (const outcome of ['delivered', 'retry', 'failed'] satisfies NoticeAttemptOutcome[]) counted.inc({ outcome }, 0);

  const raise: ExpiryNotices['raise'] = async (certificate, horizonDays, daysLeft) => {
    for (const clientId of certificate.clients) {
      const endpoint = await deps.endpointOf(clientId);
      const at = now();
      const created = await store.raise({
        thumbprint: certificate.thumbprint,
        clientId,
        horizonDays,
        daysLeft,
        jti: randomUUID(),
        createdAt: at,
        nextAttemptAt: at,
        status: endpoint === undefined ? 'no_endpoint' : 'pending',
        ...(endpoint === undefined ? {} : { endpoint }),
      });
      if (created) {
        logger.info(
          {
            event: 'certificate.notice_raised',
            thumbprint: certificate.thumbprint,
            clientId,
            horizonDays,
            daysLeft,
            outcome: endpoint === undefined ? 'no_endpoint' : 'pending',
          },
          endpoint === undefined ? 'TPP certificate expiring; the client registered no notification endpoint' : 'TPP certificate expiry notice queued',
        );
      }
    }
  };

  const attempt = async (notice: ExpiryNotice): Promise<boolean> => {
    const certificate = await registry.find(notice.thumbprint);
    try {
      if (certificate === undefined) throw new Error('the certificate is no longer registered');
      const token = await deps.signer.sign(expiryNoticeClaims(deps.issuer, notice, certificate, now()), SECEVENT_TYP);
      await deps.delivery.post(notice.endpoint!, token);
      await store.recordAttempt(notice, { deliveredAt: now() });
      counted.inc({ outcome: 'delivered' });
      logger.info(
        { event: 'certificate.notice_delivered', thumbprint: notice.thumbprint, clientId: notice.clientId, horizonDays: notice.horizonDays },
        'TPP certificate expiry notice delivered',
      );
      return true;
    } catch (err) {
      const attempts = notice.attempts + 1;
      const giveUp = attempts >= deps.maxAttempts;
      const reason = (err as Error).message;
      await store.recordAttempt(notice, {
        error: reason,
        ...(giveUp ? {} : { nextAttemptAt: new Date(now().getTime() + backoffSeconds(attempts, deps.retryBaseSeconds) * 1000) }),
      });
      counted.inc({ outcome: giveUp ? 'failed' : 'retry' });
      logger.warn(
        {
          event: giveUp ? 'certificate.notice_failed' : 'certificate.notice_retry',
          thumbprint: notice.thumbprint,
          clientId: notice.clientId,
          horizonDays: notice.horizonDays,
          attempts,
          reason,
        },
        giveUp ? 'TPP certificate expiry notice could not be delivered; giving up' : 'TPP certificate expiry notice not delivered; will retry',
      );
      return false;
    }
  };

  const deliverDue: ExpiryNotices['deliverDue'] = async () => {
    const leaseSeconds = Math.ceil(deps.timeoutMs / 1000) + 60;
    const due = await store.claimDue(now(), leaseSeconds, CLAIM_BATCH);
    // Side by side: one hanging endpoint costs one timeout, not one per notice behind it.
    const outcomes = await Promise.all(due.map(attempt));
    return { delivered: outcomes.filter(Boolean).length, failed: outcomes.filter((o) => !o).length };
  };

  const unrenewed: ExpiryNotices['unrenewed'] = async (before) => {
    const at = now().getTime();
    const found: UnrenewedCertificate[] = [];
    for (const certificate of await registry.expiring(before)) {
      const clients: UnrenewedCertificate['clients'] = [];
      for (const clientId of certificate.clients) {
        const current = await registry.list({ clientId, status: 'active' });
        const renewed = current.some((c) => c.thumbprint !== certificate.thumbprint && c.usage === certificate.usage && c.notAfter > certificate.notAfter);
        if (!renewed) clients.push({ clientId, notices: await store.list({ clientIds: [clientId], thumbprints: [certificate.thumbprint] }) });
      }
      if (clients.length === 0) continue;
      found.push({
        thumbprint: certificate.thumbprint,
        orgId: certificate.orgId,
        subjectDn: certificate.subjectDn,
        usage: certificate.usage,
        notAfter: certificate.notAfter,
        daysLeft: Math.max(0, Math.floor((certificate.notAfter.getTime() - at) / 86_400_000)),
        clients,
      });
    }
    return found;
  };

  return {
    raise,
    deliverDue,
    unrenewed,
    list: (filter) => store.list(filter),
    start() {
      timer = setInterval(() => {
        running ??= deliverDue()
          .catch((err: unknown) => logger.warn({ err, event: 'certificate.notice_pass_failed' }, 'expiry notice delivery pass failed'))
          .finally(() => {
            running = undefined;
          });
      }, deps.intervalSeconds * 1000);
      timer.unref();
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      await running;
    },
  };
}

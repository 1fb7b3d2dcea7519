/*
 * What the expiry notices need kept: one notice per certificate, client and warning horizon, its
 * delivery state, and a claim so that one instance at a time attempts a delivery.
 */

export const NOTICE_STATUSES = ['pending', 'delivered', 'failed', 'no_endpoint'] as const;
export type NoticeStatus = (typeof NOTICE_STATUSES)[number];

export interface ExpiryNotice {
  thumbprint: string;
  clientId: string;
  horizonDays: number;
  /** The client's `moat_notification_uri` when the notice was raised; undefined when it registered none. */
  endpoint?: string;
  status: NoticeStatus;
  /** The Security Event Token's jti: the same on every retry, so a receiver can drop duplicates (RFC 8417 §2.2). */
  jti: string;
  daysLeft: number;
  attempts: number;
  nextAttemptAt: Date;
  lastError?: string;
  deliveredAt?: Date;
  createdAt: Date;
}

export interface ExpiryNoticeStore {
  /** Records a notice unless one exists for this certificate, client and horizon; true when this call created it. */
  raise(notice: Omit<ExpiryNotice, 'attempts' | 'lastError' | 'deliveredAt'>): Promise<boolean>;
  /** Pending notices due at `now`, claimed for `leaseSeconds` so no other instance attempts them meanwhile. */
  claimDue(now: Date, leaseSeconds: number, limit: number): Promise<ExpiryNotice[]>;
  /** The outcome of one attempt: delivered, or failed with the next attempt's time (undefined: give up). */
  recordAttempt(
    notice: Pick<ExpiryNotice, 'thumbprint' | 'clientId' | 'horizonDays'>,
    outcome: { deliveredAt: Date } | { error: string; nextAttemptAt?: Date },
  ): Promise<void>;
  /** Every notice raised for these clients (or certificates), newest first. */
  list(filter: { clientIds?: string[]; thumbprints?: string[] }): Promise<ExpiryNotice[]>;
}

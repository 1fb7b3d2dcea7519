/*
 * When the TPP last used a consent (issue 18 point 6: the dashboard shows it). Every path where
 * Moat sees a TPP use its access — a token issued, a token introspected, a gateway check allowed, a
 * sandbox API call — reports the grant here. Recording is cheap and off those paths: at most once a
 * minute per grant and instance (the in-process note of when it was last written), and the write is
 * not awaited; a failed write is logged and the next use a minute later tries again. The dashboard so
 * shows the last use to within a minute.
 */

/** How stale the recorded last use may be: one write per grant per interval, per instance. */
export const CONSENT_USE_INTERVAL_SECONDS = 60;

/** Grants remembered per instance; past it the note is cleared (a burst of writes, nothing lost). */
const MAX_TRACKED = 50_000;

export interface ConsentUse {
  /** The TPP used the consent behind `grantId` now. Returns at once. */
  used(grantId: string): void;
}

export function createConsentUse(deps: {
  record: (grantId: string, at: Date) => Promise<void>;
  now: () => Date;
  onError: (err: unknown) => void;
  intervalSeconds?: number;
}): ConsentUse {
  const interval = (deps.intervalSeconds ?? CONSENT_USE_INTERVAL_SECONDS) * 1000;
  const lastWritten = new Map<string, number>();
  return {
    used(grantId) {
      const at = deps.now();
      const last = lastWritten.get(grantId);
      if (last !== undefined && at.getTime() - last < interval) return;
      if (lastWritten.size >= MAX_TRACKED) lastWritten.clear();
      lastWritten.set(grantId, at.getTime());
      deps.record(grantId, at).catch((err: unknown) => {
        // Not written: the next use may try again.
        lastWritten.delete(grantId);
        deps.onError(err);
      });
    },
  };
}

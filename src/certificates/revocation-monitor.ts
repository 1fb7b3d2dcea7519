import { X509Certificate } from 'node:crypto';
import type { Logger } from '../observability/logger.ts';
import type { CertificateRegistry, RegisteredCertificate } from './certificate-registry.ts';
import type { RevocationChecker, RevocationVerdict } from './revocation-checker.ts';

/*
 * The background half of the certificate lifecycle: every active certificate is re-checked each
 * interval, a revocation is recorded in the registry at once (from then on the certificate neither
 * authenticates a client nor keeps a bound token alive), and certificates nearing expiry are
 * reported once per warning horizon.
 */

export interface RevocationMonitor {
  /** One pass over every active certificate; returns what it found. */
  runOnce(): Promise<{ checked: number; revoked: string[]; unknown: string[]; expiring: { thumbprint: string; daysLeft: number }[] }>;
  /** Checks one certificate now (at registration), recording the result. */
  checkNow(certificate: RegisteredCertificate): Promise<RevocationVerdict>;
  start(): void;
  stop(): void;
}

export function createRevocationMonitor(deps: {
  registry: CertificateRegistry;
  checker: RevocationChecker;
  logger: Logger;
  intervalSeconds: number;
  expiryWarningDays: readonly number[];
  /** Told of each certificate crossing a horizon, before it is recorded: the TPP's expiry notices. */
  onExpiring?: (certificate: RegisteredCertificate, horizonDays: number, daysLeft: number) => Promise<void>;
  now?: () => Date;
}): RevocationMonitor {
  const { registry, checker, logger } = deps;
  const now = deps.now ?? (() => new Date());
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;

  const checkNow = async (certificate: RegisteredCertificate): Promise<RevocationVerdict> => {
    if (certificate.issuerPem === undefined) {
      const verdict: RevocationVerdict = { status: 'unknown', source: 'none', detail: 'the issuer certificate is not known' };
      await registry.recordCheck(certificate.thumbprint, `unknown: ${verdict.detail}`);
      return verdict;
    }
    const verdict = await checker.check(new X509Certificate(certificate.pem), new X509Certificate(certificate.issuerPem), certificate);
    if (verdict.status === 'revoked') {
      const changed = await registry.revoke(certificate.thumbprint, {
        source: verdict.source === 'crl' ? 'crl' : 'ocsp',
        reason: verdict.reason ?? verdict.detail,
        ...(verdict.revokedAt === undefined ? {} : { at: verdict.revokedAt }),
      });
      if (changed) {
        logger.warn(
          {
            event: 'certificate.revoked',
            outcome: 'mtls_certificate_revoked',
            thumbprint: certificate.thumbprint,
            orgId: certificate.orgId,
            clients: certificate.clients,
            source: verdict.source,
            detail: verdict.detail,
          },
          'TPP certificate revoked: its clients can no longer authenticate and its bound tokens are inactive',
        );
      }
    }
    await registry.recordCheck(certificate.thumbprint, verdict.status === 'unknown' ? `unknown: ${verdict.detail}` : verdict.status);
    if (verdict.status === 'unknown') {
      logger.warn(
        { event: 'certificate.revocation_unknown', thumbprint: certificate.thumbprint, orgId: certificate.orgId, detail: verdict.detail },
        'revocation status of a TPP certificate could not be established',
      );
    }
    return verdict;
  };

  const warnExpiring = async (): Promise<{ thumbprint: string; daysLeft: number }[]> => {
    const horizons = [...deps.expiryWarningDays].sort((a, b) => b - a);
    if (horizons.length === 0) return [];
    const at = now().getTime();
    const soon = await registry.expiring(new Date(at + horizons[0]! * 86_400_000));
    const reported: { thumbprint: string; daysLeft: number }[] = [];
    for (const certificate of soon) {
      const daysLeft = Math.max(0, Math.floor((certificate.notAfter.getTime() - at) / 86_400_000));
      // The tightest horizon crossed; each is reported once per certificate.
      const horizon = horizons.filter((h) => daysLeft < h).at(-1) ?? horizons[0]!;
      const name = `expiry-warning-${horizon}d`;
      const events = await registry.events(certificate.thumbprint);
      if (events.some((e) => e.event === name)) continue;
      try {
        await deps.onExpiring?.(certificate, horizon, daysLeft);
      } catch (err) {
        // Not recorded, so the next pass tries again.
        logger.warn({ err, event: 'certificate.notice_raise_failed', thumbprint: certificate.thumbprint }, 'raising the expiry notice failed');
        continue;
      }
      logger.warn(
        {
          event: 'certificate.expiring',
          thumbprint: certificate.thumbprint,
          orgId: certificate.orgId,
          clients: certificate.clients,
          notAfter: certificate.notAfter.toISOString(),
          daysLeft,
          horizonDays: horizon,
        },
        `TPP certificate expires in ${daysLeft} days`,
      );
      await registry.recordEvent(certificate.thumbprint, name, { daysLeft });
      reported.push({ thumbprint: certificate.thumbprint, daysLeft });
    }
    return reported;
  };

  const runOnce: RevocationMonitor['runOnce'] = async () => {
    const active = await registry.list({ status: 'active' });
    const revoked: string[] = [];
    const unknown: string[] = [];
    for (const certificate of active) {
      try {
        const verdict = await checkNow(certificate);
        if (verdict.status === 'revoked') revoked.push(certificate.thumbprint);
        if (verdict.status === 'unknown') unknown.push(certificate.thumbprint);
      } catch (err) {
        logger.warn({ err, event: 'certificate.check_failed', thumbprint: certificate.thumbprint }, 'checking a TPP certificate failed');
        unknown.push(certificate.thumbprint);
      }
    }
    return { checked: active.length, revoked, unknown, expiring: await warnExpiring() };
  };

  return {
    runOnce,
    checkNow,
    start() {
      timer = setInterval(() => {
        // One pass at a time: a slow responder must not pile passes up.
        running ??= runOnce()
          .catch((err: unknown) => logger.warn({ err, event: 'certificate.monitor_failed' }, 'certificate monitor pass failed'))
          .finally(() => {
            running = undefined;
          });
      }, deps.intervalSeconds * 1000);
      timer.unref();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
    },
  };
}

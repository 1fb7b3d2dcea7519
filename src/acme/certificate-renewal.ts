import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger.ts';

// By `import()` type queries, not `import type`: acme-issuer.ts (and acme-client with it) is loaded
// only by a dynamic import when acme is enabled, which optional-packages-loaded-lazily checks and
// dependency-cruiser cannot tell from an `import type` with this TypeScript (7.0).
type AcmeIssuer = import('./acme-issuer.ts').AcmeIssuer;
type IssuedCertificate = import('./acme-issuer.ts').IssuedCertificate;

/*
 * One of Moat's own certificates kept current: read from its files at start (or ordered when they
 * hold none worth keeping), renewed once `renewAtFraction` of its lifetime has passed, handed to
 * whoever presents it (`onRenewed`: the TLS server's setSecureContext, the account service's agent)
 * and written back to its files so a restart starts with it. A failed renewal keeps the current
 * certificate, is retried with doubling back-off, and raises `moat_own_certificate_renewal_overdue`
 * with an error log line per attempt: with the default 2/3 that begins a third of the lifetime
 * before expiry.
 */

/** Which of Moat's certificates (a metric label: a closed set). */
export type OwnCertificateName = 'server' | 'account_service_client';

/** Prometheus series of Moat's own certificates, one set per registry. */
export interface OwnCertificateMetrics {
  notAfter: Gauge<'certificate'>;
  renewAt: Gauge<'certificate'>;
  overdue: Gauge<'certificate'>;
  renewals: Counter<'certificate' | 'outcome'>;
}

export function ownCertificateMetrics(registry: Registry): OwnCertificateMetrics {
  return {
    notAfter: new Gauge({
      name: 'moat_own_certificate_not_after_timestamp_seconds',
      help: "When each of Moat's own certificates expires (Unix time)",
      labelNames: ['certificate'],
      registers: [registry],
    }),
    renewAt: new Gauge({
      name: 'moat_own_certificate_renew_at_timestamp_seconds',
      help: "When each of Moat's own certificates is due for renewal (Unix time)",
      labelNames: ['certificate'],
      registers: [registry],
    }),
    overdue: new Gauge({
      name: 'moat_own_certificate_renewal_overdue',
      help: '1 while a certificate due for renewal could not be renewed (attempts are retried with back-off), else 0',
      labelNames: ['certificate'],
      registers: [registry],
    }),
    renewals: new Counter({
      name: 'moat_own_certificate_renewals_total',
      help: "Renewal attempts of Moat's own certificates by outcome (renewed, failed)",
      labelNames: ['certificate', 'outcome'],
      registers: [registry],
    }),
  };
}

export interface CertificateRenewalOptions {
  name: OwnCertificateName;
  domains: readonly string[];
  /** Where the chain and key live (PEM); rewritten after each issuance. */
  certFile: string;
  keyFile: string;
  issuer: AcmeIssuer;
  renewAtFraction: number;
  retry: { initialSeconds: number; maxSeconds: number };
  checkIntervalSeconds: number;
  logger: Logger;
  metrics: OwnCertificateMetrics;
  /** The clock deciding when a certificate is due; tests move it instead of waiting. */
  now?: () => Date;
}

/** What one check did. */
export type RenewalCheck = 'not_due' | 'backing_off' | 'renewed' | 'failed';

export interface RenewalState {
  notBefore: Date;
  notAfter: Date;
  renewAt: Date;
  serial: string;
  /** Failed attempts since the last success. */
  failures: number;
  /** When a failed renewal is tried again. */
  nextAttemptAt?: Date;
}

export interface CertificateRenewal {
  readonly name: OwnCertificateName;
  /**
   * At start: the certificate in the files when it is valid, matches its key and covers the
   * domains; a new one when it does not (or is already due and the CA answers). Throws
   * `OwnCertificateUnavailable` when no usable certificate can be had.
   */
  ensure(): Promise<IssuedCertificate>;
  current(): IssuedCertificate;
  state(): RenewalState;
  /** Called with each renewed certificate before it counts as renewed (and is stored); a throw fails the renewal. */
  onRenewed(listener: (certificate: IssuedCertificate) => void): void;
  /** Renews when due and not backing off from a failure. */
  check(): Promise<RenewalCheck>;
  start(): void;
  /** Stops the checks and waits for a renewal in flight. */
  stop(): Promise<void>;
}

/** No certificate of Moat's own could be read or ordered at start. */
export class OwnCertificateUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OwnCertificateUnavailable';
  }
}

interface Held {
  pem: IssuedCertificate;
  notBefore: Date;
  notAfter: Date;
  serial: string;
}

const DAY_MS = 86_400_000;

/** Parses a chain and key; throws unless the leaf carries the key and covers every domain. */
function inspect(pem: IssuedCertificate, domains: readonly string[]): Held {
  const leaf = new X509Certificate(pem.certPem);
  if (!leaf.checkPrivateKey(createPrivateKey(pem.keyPem))) throw new Error("the key is not the certificate's");
  const missing = domains.filter((d) => leaf.checkHost(d, { wildcards: false }) === undefined);
  if (missing.length > 0) throw new Error(`the certificate does not cover ${missing.join(', ')}`);
  return { pem, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), serial: leaf.serialNumber };
}

/** Writes through a temporary file and a rename, so a reader never sees half a file. */
function writeAtomically(file: string, content: string, mode: number): void {
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, file);
}

export function createCertificateRenewal(options: CertificateRenewalOptions): CertificateRenewal {
  const now = options.now ?? (() => new Date());
  const { name, logger, metrics } = options;
  let held: Held | undefined;
  let failures = 0;
  let nextAttemptAt: Date | undefined;
  let inFlight: Promise<RenewalCheck> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const listeners: ((certificate: IssuedCertificate) => void)[] = [];

  const renewAtOf = (h: Held) => new Date(h.notBefore.getTime() + (h.notAfter.getTime() - h.notBefore.getTime()) * options.renewAtFraction);
  const daysLeft = (h: Held) => Math.floor((h.notAfter.getTime() - now().getTime()) / DAY_MS);

  const hold = (next: Held) => {
    held = next;
    metrics.notAfter.set({ certificate: name }, next.notAfter.getTime() / 1000);
    metrics.renewAt.set({ certificate: name }, renewAtOf(next).getTime() / 1000);
  };

  const readFiles = (): Held | string => {
    if (!existsSync(options.certFile) || !existsSync(options.keyFile)) return 'no certificate in its files yet';
    try {
      const found = inspect({ certPem: readFileSync(options.certFile, 'utf8'), keyPem: readFileSync(options.keyFile, 'utf8') }, options.domains);
      return found.notAfter.getTime() <= now().getTime() ? `the certificate in ${options.certFile} expired at ${found.notAfter.toISOString()}` : found;
    } catch (err) {
      return `the certificate in ${options.certFile} cannot be used: ${(err as Error).message}`;
    }
  };

  /** Orders, checks, hands over and stores a new certificate. */
  const obtain = async (): Promise<Held> => {
    const issued = await options.issuer.issue(options.domains);
    const next = inspect(issued, options.domains);
    for (const listener of listeners) listener(issued);
    // The key first: a crash between the two leaves a pair that does not match, which the next
    // start sees (checkPrivateKey) and replaces, never a certificate served with the wrong key.
    writeAtomically(options.keyFile, issued.keyPem, 0o600);
    writeAtomically(options.certFile, issued.certPem, 0o644);
    return next;
  };

  const issuedLog = (h: Held, event: string, message: string) =>
    logger.info(
      { event, certificate: name, serial: h.serial, notAfter: h.notAfter.toISOString(), until: renewAtOf(h).toISOString(), domains: [...options.domains] },
      message,
    );

  const renew = async (): Promise<RenewalCheck> => {
    try {
      const next = await obtain();
      hold(next);
      failures = 0;
      nextAttemptAt = undefined;
      metrics.overdue.set({ certificate: name }, 0);
      metrics.renewals.inc({ certificate: name, outcome: 'renewed' });
      issuedLog(next, 'own_certificate.renewed', `${name} certificate renewed`);
      return 'renewed';
    } catch (err) {
      failures += 1;
      const waitSeconds = Math.min(options.retry.initialSeconds * 2 ** (failures - 1), options.retry.maxSeconds);
      nextAttemptAt = new Date(now().getTime() + waitSeconds * 1000);
      metrics.overdue.set({ certificate: name }, 1);
      metrics.renewals.inc({ certificate: name, outcome: 'failed' });
      const current = held!;
      logger.error(
        {
          event: 'own_certificate.renewal_failed',
          certificate: name,
          err,
          attempts: failures,
          until: nextAttemptAt.toISOString(),
          serial: current.serial,
          notAfter: current.notAfter.toISOString(),
          daysLeft: daysLeft(current),
        },
        `${name} certificate renewal failed (attempt ${failures}, next at ${nextAttemptAt.toISOString()}); the current one expires at ${current.notAfter.toISOString()}, in ${daysLeft(current)} days`,
      );
      return 'failed';
    }
  };

  const check = (): Promise<RenewalCheck> => {
    if (inFlight !== undefined) return inFlight;
    if (held === undefined) return Promise.reject(new Error(`the ${name} certificate was never obtained (call ensure first)`));
    const at = now().getTime();
    if (at < renewAtOf(held).getTime()) return Promise.resolve('not_due');
    if (nextAttemptAt !== undefined && at < nextAttemptAt.getTime()) return Promise.resolve('backing_off');
    inFlight = renew().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  metrics.overdue.set({ certificate: name }, 0);
  for (const outcome of ['renewed', 'failed']) metrics.renewals.inc({ certificate: name, outcome }, 0);

  return {
    name,
    async ensure() {
      const found = readFiles();
      if (typeof found !== 'string') {
        hold(found);
        issuedLog(found, 'own_certificate.loaded', `${name} certificate loaded from ${options.certFile}`);
        // Due already (Moat was down past the renewal time): renew now, serve the old one if that fails.
        if (now().getTime() >= renewAtOf(found).getTime()) await check();
        return held!.pem;
      }
      logger.info(
        { event: 'own_certificate.ordering', certificate: name, reason: found, domains: [...options.domains] },
        `ordering the ${name} certificate by ACME`,
      );
      try {
        hold(await obtain());
      } catch (err) {
        throw new OwnCertificateUnavailable(`acme: no ${name} certificate (${found}) and the ACME order failed: ${(err as Error).message}`, { cause: err });
      }
      issuedLog(held!, 'own_certificate.issued', `${name} certificate issued`);
      return held!.pem;
    },
    current() {
      if (held === undefined) throw new Error(`the ${name} certificate was never obtained (call ensure first)`);
      return held.pem;
    },
    state() {
      if (held === undefined) throw new Error(`the ${name} certificate was never obtained (call ensure first)`);
      return {
        notBefore: held.notBefore,
        notAfter: held.notAfter,
        renewAt: renewAtOf(held),
        serial: held.serial,
        failures,
        ...(nextAttemptAt === undefined ? {} : { nextAttemptAt }),
      };
    },
    onRenewed: (listener) => void listeners.push(listener),
    check,
    start() {
      if (timer !== undefined) return;
      timer = setInterval(() => void check().catch(() => undefined), options.checkIntervalSeconds * 1000);
      timer.unref();
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      await inFlight;
    },
  };
}

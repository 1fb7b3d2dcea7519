import type { Middleware } from 'koa';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuditLog } from '../audit/audit-log.ts';
import type { MoatConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { endpointOf, unlessStorageIsDown } from '../observability/metrics.ts';
import { outcomeOf } from '../kernel/outcome.ts';
import type { ClientStanding } from '../provider/create-provider.ts';
import { createClientRestrictions, type ClientRestrictions, type RestrictionStore } from './client-restrictions.ts';
import { createThreatDetector, type DetectorSettings, type ThreatDetector, type ThreatFlag } from './detector.ts';
import type { Observation } from './signals.ts';
import type { ThreatState } from './threat-state.ts';

/*
 * Threat detection wired into a Moat process: every answered request is observed (counted in
 * batches after its answer, off its path, one Redis command per batch), closed buckets are folded on a timer, and each flag is recorded, logged,
 * counted and answered as configured for its severity — log, step-up or quarantine.
 */

/** Observations waiting to be counted before answers wait for room (about 2 MB of memory). */
const MAX_PENDING = 10_000;

export interface ThreatProtection {
  detector: ThreatDetector;
  restrictions: ClientRestrictions;
  standing: ClientStanding;
  middleware: Middleware;
  start(): void;
  stop(): void;
  /** Resolves when every observation made so far has been counted and judged (tests, shutdown). */
  settled(): Promise<void>;
}

export function detectorSettings(t: MoatConfig['threats']): DetectorSettings {
  return {
    bucketSeconds: t.bucketSeconds,
    warmupBuckets: t.warmupBuckets,
    alpha: 2 / (t.spanBuckets + 1),
    hourlyAlpha: 0.1,
    hourlyMinimum: t.hourlyMinimumBuckets,
    scores: t.scores,
    maxRanges: 64,
    rules: [
      {
        signal: 'errors:invalid_grant',
        atLeast: t.rules.invalidGrantPerBucket,
        severity: 'high',
        what: 'a storm of invalid_grant (replayed authorization codes or refresh tokens)',
      },
      { signal: 'probing', atLeast: t.rules.probingPerBucket, severity: 'medium', what: 'requests for scopes, permissions or roles outside the registration' },
      { signal: 'errors:mtls', atLeast: t.rules.certificateFailuresPerBucket, severity: 'medium', what: 'repeated client-certificate failures' },
      {
        signal: 'login_failures',
        atLeast: t.rules.loginFailuresPerRangePerBucket,
        severity: 'high',
        what: 'failed customer sign-ins from one address range (credential stuffing)',
        entityPrefix: 'range:',
      },
    ],
  };
}

/** Which endpoint a request counts for; customer sign-ins are `login`. */
function endpointFor(path: string, method: string): string {
  if (method === 'POST' && /^\/(interaction\/[^/]+|account)\/login\/?$/i.test(path)) return 'login';
  return endpointOf(path);
}

export function createThreatProtection(deps: {
  config: MoatConfig;
  /** Where restrictions and flags are kept (Postgres). */
  restrictionStore: RestrictionStore;
  /** Where the detector counts and learns: Redis, shared by every instance, or this process's memory. */
  state: ThreatState;
  audit: AuditLog;
  logger: Logger;
  metrics: Registry;
  revokeClientTokens: (clientId: string, reason: string) => Promise<number>;
}): ThreatProtection {
  const t = deps.config.threats;
  const { logger } = deps;
  const restrictions = createClientRestrictions({ store: deps.restrictionStore, audit: deps.audit, logger, revokeClientTokens: deps.revokeClientTokens });
  const flagsTotal = new Counter({
    name: 'moat_threat_flags_total',
    help: 'Threat flags by severity and response',
    labelNames: ['severity', 'response'],
    registers: [deps.metrics],
  });
  const { state } = deps;

  const respond = async (flag: ThreatFlag) => {
    const response = flag.clientId === undefined ? 'log' : t.responses[flag.severity];
    const flagId = await restrictions.recordFlag(flag, response);
    flagsTotal.inc({ severity: flag.severity, response });
    logger.warn(
      {
        event: 'threat.flagged',
        flagId,
        entity: flag.entity,
        clientId: flag.clientId,
        signal: flag.signal,
        severity: flag.severity,
        expected: flag.expected,
        seen: flag.seen,
        score: flag.score,
        response,
      },
      flag.explanation,
    );
    if (flag.clientId === undefined) return;
    const by = { actor: 'system' as const, actorId: 'threat-detector', flagId };
    if (response === 'step-up') await restrictions.stepUp(flag.clientId, flag.explanation, t.stepUp.durationSeconds, by);
    if (response === 'quarantine') await restrictions.quarantine(flag.clientId, flag.explanation, by);
  };
  const detector = createThreatDetector({ state, settings: detectorSettings(t), onFlag: respond });

  new Gauge({
    name: 'moat_anomaly_score',
    help: 'Highest anomaly score (spreads above normal) per client and signal in the current bucket',
    labelNames: ['client_id', 'signal'],
    registers: [deps.metrics],
    aggregator: 'max',
    collect() {
      this.reset();
      for (const s of detector.currentScores()) {
        if (s.entity.startsWith('client:')) this.set({ client_id: s.entity.slice('client:'.length), signal: s.signal }, s.score);
      }
    },
  });
  new Gauge({
    name: 'moat_clients_restricted',
    help: 'Clients under a restriction in force, by kind',
    labelNames: ['kind'],
    registers: [deps.metrics],
    aggregator: 'max',
    collect() {
      return unlessStorageIsDown(async () => {
        const all = await restrictions.list();
        this.set({ kind: 'quarantine' }, all.filter((r) => r.kind === 'quarantine').length);
        this.set({ kind: 'step-up' }, all.filter((r) => r.kind === 'step-up' && (r.until === undefined || r.until > new Date())).length);
      });
    },
  });

  const pending = new Set<Promise<void>>();
  /**
   * Observations not yet counted are kept in memory, bounded: once MAX_PENDING wait (Redis slower
   * than the traffic, or away until its commands time out), a request's answer waits for room
   * rather than its observation being dropped, so a flood cannot blind the detector.
   */
  const roomForObservations = async () => {
    while (pending.size >= MAX_PENDING) await Promise.race(pending);
  };
  let timer: NodeJS.Timeout | undefined;
  const observe = (o: Observation) => {
    const p = detector.observe(o).catch((err: unknown) => logger.warn({ err, event: 'threat.observe_failed' }, 'threat detection could not count a request'));
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  return {
    detector,
    restrictions,
    standing: {
      quarantined: (clientId) => restrictions.inForce(clientId).quarantine?.reason,
      steppedUp: (clientId) => {
        const stepUp = restrictions.inForce(clientId).stepUp;
        return stepUp === undefined ? undefined : { accessTokenTtl: t.stepUp.accessTokenTtl, reason: stepUp.reason };
      },
    },
    middleware: async (ctx, next) => {
      try {
        await next();
      } finally {
        if (t.enabled) {
          const oidc = (
            ctx as { oidc?: { client?: { clientId?: string }; entities?: { Grant?: { accountId?: string }; AccessToken?: { accountId?: string } } } }
          ).oidc;
          const customerId = oidc?.entities?.AccessToken?.accountId ?? oidc?.entities?.Grant?.accountId;
          observe({
            at: new Date(),
            address: ctx.ip,
            endpoint: endpointFor(ctx.path, ctx.method),
            outcome: outcomeOf(ctx),
            ...(oidc?.client?.clientId === undefined ? {} : { clientId: oidc.client.clientId }),
            ...(customerId === undefined ? {} : { customerId }),
          });
          await roomForObservations();
        }
      }
    },
    start() {
      restrictions.start();
      if (!t.enabled) return;
      // Fold a little after each bucket closes; several instances race for each bucket, one wins.
      timer = setInterval(
        () => {
          detector
            .evaluate(new Date())
            .catch((err: unknown) => logger.warn({ err, event: 'threat.evaluate_failed' }, 'threat detection could not fold a bucket'));
        },
        Math.max(250, (t.bucketSeconds * 1000) / 4),
      );
      timer.unref();
    },
    stop() {
      restrictions.stop();
      if (timer !== undefined) clearInterval(timer);
    },
    async settled() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
  };
}

import { describeSignal, incrementsOf, type Observation } from './signals.ts';
import {
  countForScore,
  emptyBaseline,
  expectationAt,
  learn,
  score,
  type BaselineParameters,
  type BaselineState,
  type Expectation,
} from './streaming-baseline.ts';
import type { EntityModel, ThreatState } from './threat-state.ts';

/*
 * The anomaly detector: counts every request into per-entity buckets, judges a bucket against the
 * entity's learned baseline while it fills (a spike is caught on the request that crosses the line,
 * not a minute later) and again when it closes, learns closed buckets, and applies fixed rules that
 * need no baseline (a storm of invalid_grant is never normal). Every flag says which signal, what
 * was expected and what was seen.
 */

export type Severity = 'low' | 'medium' | 'high';

export interface ThreatFlag {
  at: Date;
  entity: string;
  clientId?: string;
  signal: string;
  severity: Severity;
  /** What the baseline expected in a bucket (or the rule's threshold), and what was counted. */
  expected: number;
  seen: number;
  /** Spreads above the expectation; undefined for a rule. */
  score?: number;
  kind: 'baseline' | 'rule';
  explanation: string;
}

export interface DetectorSettings extends BaselineParameters {
  bucketSeconds: number;
  /** Scores from which a bucket is flagged at each severity. */
  scores: Record<Severity, number>;
  /** Fixed per-bucket thresholds judged from the first request, warm-up or not. */
  rules: { signal: string; atLeast: number; severity: Severity; what: string /** Only entities whose key starts so. */; entityPrefix?: string }[];
  /** Source ranges remembered per client (beyond it, new ranges are no longer reported). */
  maxRanges: number;
}

export const DEFAULT_RULES: DetectorSettings['rules'] = [
  { signal: 'errors:invalid_grant', atLeast: 20, severity: 'high', what: 'a storm of invalid_grant (replayed authorization codes or refresh tokens)' },
  { signal: 'probing', atLeast: 10, severity: 'medium', what: 'requests for scopes, permissions or roles outside the registration' },
  { signal: 'errors:mtls', atLeast: 20, severity: 'medium', what: 'repeated client-certificate failures' },
  {
    signal: 'login_failures',
    atLeast: 30,
    severity: 'high',
    what: 'failed customer sign-ins from one address range (credential stuffing)',
    entityPrefix: 'range:',
  },
];

export interface ThreatDetector {
  observe(o: Observation): Promise<void>;
  /** Folds closed buckets into the baselines (every instance may call it; one folds each bucket). */
  evaluate(now: Date): Promise<void>;
  /** The highest score seen per entity and signal in the current bucket (for metrics). */
  currentScores(): { entity: string; signal: string; score: number }[];
}

const SEVERITIES: Severity[] = ['high', 'medium', 'low'];
/** Spreads above normal beyond which a bucket is not learned at face value. */
const LEARNING_CAP = 2;

export function createThreatDetector(deps: {
  state: ThreatState;
  settings: DetectorSettings;
  onFlag: (flag: ThreatFlag) => void | Promise<void>;
}): ThreatDetector {
  const { state, settings } = deps;
  const bucketOf = (at: Date) => Math.floor(at.getTime() / 1000 / settings.bucketSeconds);
  const hourOf = (bucket: number) => new Date(bucket * settings.bucketSeconds * 1000).getUTCHours();
  /** Models read once per bucket per entity, so judging a filling bucket costs no extra round trip. */
  const cached = new Map<string, { bucket: number; model: Promise<EntityModel | undefined> }>();
  const scores = new Map<string, { bucket: number; score: number }>();

  const modelFor = (entity: string, bucket: number) => {
    const hit = cached.get(entity);
    if (hit !== undefined && hit.bucket === bucket) return hit.model;
    const model = state.loadModel(entity).catch(() => undefined);
    cached.set(entity, { bucket, model });
    if (cached.size > 50_000) cached.delete(cached.keys().next().value!);
    return model;
  };

  const raise = async (bucket: number, flag: Omit<ThreatFlag, 'clientId'>) => {
    // One flag per entity, signal, bucket and severity across every instance: a bucket that keeps
    // growing escalates (low, then medium, then high) instead of being silenced by its first flag.
    if (!(await state.claim(`flag:${flag.entity}:${flag.signal}:${bucket}:${flag.severity}`, settings.bucketSeconds * 3))) return;
    const clientId = flag.entity.startsWith('client:') ? flag.entity.slice('client:'.length) : undefined;
    await deps.onFlag({ ...flag, ...(clientId === undefined ? {} : { clientId }) });
  };

  const judgeBaseline = async (bucket: number, entity: string, signal: string, seen: number, e: Expectation, at: Date, closing: boolean) => {
    const z = score(seen, e);
    const key = `${entity}\u0000${signal}`;
    const before = scores.get(key);
    if (before === undefined || before.bucket !== bucket || before.score < z) scores.set(key, { bucket, score: z });
    if (!e.warmedUp) return;
    const severity = SEVERITIES.find((s) => z >= settings.scores[s]);
    if (severity === undefined) return;
    const expected = Number(e.expected.toFixed(2));
    await raise(bucket, {
      at,
      entity,
      signal,
      severity,
      expected,
      seen,
      score: Number(z.toFixed(1)),
      kind: 'baseline',
      explanation:
        `${describeSignal(signal)}: ${seen} in ${closing ? 'a' : 'this'} ${settings.bucketSeconds} s bucket, expected about ${expected} ` +
        `(± ${e.spread.toFixed(1)}) at ${String(hourOf(bucket)).padStart(2, '0')}:00 UTC — ${z.toFixed(1)} spreads above normal`,
    });
  };

  const judgeRules = async (bucket: number, entity: string, signal: string, seen: number, at: Date) => {
    for (const rule of settings.rules) {
      if (rule.signal !== signal || seen < rule.atLeast || (rule.entityPrefix !== undefined && !entity.startsWith(rule.entityPrefix))) continue;
      await raise(bucket, {
        at,
        entity,
        signal,
        severity: rule.severity,
        expected: rule.atLeast - 1,
        seen,
        kind: 'rule',
        explanation: `${rule.what}: ${seen} in one ${settings.bucketSeconds} s bucket (the rule allows at most ${rule.atLeast - 1})`,
      });
    }
  };

  const fold = async (bucket: number, entity: string, at: Date) => {
    const counts = await state.counts(bucket, entity);
    const model: EntityModel = (await state.loadModel(entity)) ?? { lastBucket: bucket - 1, signals: {} };
    if (model.lastBucket >= bucket) return; // folded already (a late second fold)
    // Quiet buckets since the last one learned are zeros: a TPP's normal includes its silences.
    const gap = Math.min(bucket - model.lastBucket - 1, (24 * 3600) / settings.bucketSeconds);
    const signals = new Set([...Object.keys(model.signals), ...Object.keys(counts)]);
    for (const signal of signals) {
      let learned: BaselineState = model.signals[signal] ?? emptyBaseline();
      for (let i = gap; i >= 1; i -= 1) learned = learn(learned, 0, hourOf(bucket - i), settings);
      const seen = counts[signal] ?? 0;
      const e = expectationAt(learned, hourOf(bucket), settings);
      await judgeBaseline(bucket, entity, signal, seen, e, at, true);
      // Robust learning (a Huber-style EWMA): a bucket is learned at most two spreads above normal.
      // The model still follows real growth, a spread at a time, but an attack neither becomes the
      // new normal nor inflates the spread enough to hide the next one.
      const capped = e.warmedUp ? Math.min(seen, countForScore(LEARNING_CAP, e)) : seen;
      model.signals[signal] = learn(learned, capped, hourOf(bucket), settings);
    }
    model.lastBucket = bucket;
    cached.delete(entity);
    await state.saveModel(entity, model);
  };

  return {
    async observe(o) {
      const bucket = bucketOf(o.at);
      for (const inc of incrementsOf(o)) {
        const counted = await state.count(bucket, inc.entity, inc.counts, inc.distinct, inc.range);
        const model = await modelFor(inc.entity, bucket);
        for (const [i, signal] of inc.counts.entries()) {
          const seen = counted.counts[i]!;
          await judgeRules(bucket, inc.entity, signal, seen, o.at);
          const learned = model?.signals[signal];
          if (learned !== undefined) await judgeBaseline(bucket, inc.entity, signal, seen, expectationAt(learned, hourOf(bucket), settings), o.at, false);
        }
        // Ranges are learned as they come; after warm-up a new one is reported (once), up to a bound.
        const warmed = model !== undefined && Object.values(model.signals).some((s) => s.n >= settings.warmupBuckets);
        if (counted.rangeIsNew && warmed && counted.ranges <= settings.maxRanges) {
          await raise(bucket, {
            at: o.at,
            entity: inc.entity,
            signal: `new_source_range:${inc.range}`,
            severity: 'low',
            expected: 0,
            seen: 1,
            kind: 'rule',
            explanation: `a request from ${inc.range}, a source range this client has not used before (${counted.ranges - 1} known)`,
          });
        }
      }
    },

    async evaluate(now) {
      const current = bucketOf(now);
      // The last two closed buckets: one missed while this instance was busy is folded late.
      for (const bucket of [current - 2, current - 1]) {
        for (const entity of await state.active(bucket)) {
          if (!(await state.claim(`fold:${entity}:${bucket}`, settings.bucketSeconds * 20))) continue;
          await fold(bucket, entity, now);
        }
      }
    },

    currentScores() {
      return [...scores].map(([key, v]) => {
        const [entity, signal] = key.split('\u0000') as [string, string];
        return { entity, signal, score: Number(v.score.toFixed(2)) };
      });
    },
  };
}

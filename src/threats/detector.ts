import { describeSignal, incrementsOf, type Increments, type Observation } from './signals.ts';
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
import type { Counted, EntityModel, ThreatState } from './threat-state.ts';

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
/**
 * Observations counted in one step at most: while one count is under way the next ones queue, and
 * the next count takes them together, so under load the detector costs Redis one command per batch.
 */
const MAX_BATCH = 256;
/** Spreads above normal beyond which a bucket is not learned at face value. */
const LEARNING_CAP = 2;

export function createThreatDetector(deps: {
  state: ThreatState;
  settings: DetectorSettings;
  onFlag: (flag: ThreatFlag) => void | Promise<void>;
}): ThreatDetector {
  const { state, settings } = deps;
  const bucketOf = (at: Date) => Math.floor(at.getTime() / 1000 / settings.bucketSeconds);
  // The UTC hour by arithmetic (JavaScript time has no leap seconds): no Date per call on the hot path.
  const hourOf = (bucket: number) => ((Math.floor((bucket * settings.bucketSeconds) / 3600) % 24) + 24) % 24;
  /** Models read once per bucket per entity (with that bucket's first count: no extra round trip). */
  const cached = new Map<string, { bucket: number; model: EntityModel | undefined }>();
  /** Folds per entity, so that a model read before a fold is not cached after it. */
  const folds = new Map<string, number>();
  const scores = new Map<string, { bucket: number; score: number }>();
  /** Observations waiting for the count under way: the next count takes them all, up to MAX_BATCH. */
  const queue: { o: Observation; resolve(): void; reject(err: unknown): void }[] = [];
  let counting = false;

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
    await state.saveModel(entity, model);
    cached.delete(entity);
    folds.set(entity, (folds.get(entity) ?? 0) + 1);
  };

  /** Judges one entity's share of an observation once it is counted. */
  const judge = async (o: Observation, inc: Increments, bucket: number, counted: Counted, model: EntityModel | undefined) => {
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
  };

  /** Counts a batch of observations in one step of the state, then judges each in order. */
  const countAndJudge = async (batch: typeof queue) => {
    const shares = batch.flatMap((item) => incrementsOf(item.o).map((inc) => ({ item, inc, bucket: bucketOf(item.o.at) })));
    const asked = shares.map(({ inc, bucket }) => cached.get(inc.entity)?.bucket !== bucket);
    const foldsBefore = shares.map(({ inc }) => folds.get(inc.entity) ?? 0);
    let counted: Counted[];
    try {
      counted = await state.count(
        shares.map(({ inc, bucket }, i) => ({
          bucket,
          entity: inc.entity,
          signals: inc.counts,
          distinct: inc.distinct,
          ...(inc.range === undefined ? {} : { range: inc.range }),
          withModel: asked[i]!,
        })),
      );
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    shares.forEach(({ inc, bucket }, i) => {
      if (asked[i] && (folds.get(inc.entity) ?? 0) === foldsBefore[i]) {
        cached.set(inc.entity, { bucket, model: counted[i]!.model });
        if (cached.size > 50_000) cached.delete(cached.keys().next().value!);
      }
    });
    // Each observation settles on its own: a flag that cannot be recorded fails that one only.
    for (const item of batch) {
      try {
        for (const [i, share] of shares.entries()) {
          if (share.item !== item) continue;
          const model = asked[i] ? counted[i]!.model : cached.get(share.inc.entity)?.model;
          await judge(item.o, share.inc, share.bucket, counted[i]!, model);
        }
        item.resolve();
      } catch (err) {
        item.reject(err);
      }
    }
  };

  const drain = async () => {
    counting = true;
    try {
      while (queue.length > 0) await countAndJudge(queue.splice(0, MAX_BATCH));
    } finally {
      counting = false;
    }
  };

  return {
    observe(o) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ o, resolve, reject });
        if (!counting) void drain();
      });
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

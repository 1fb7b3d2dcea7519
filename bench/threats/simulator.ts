import { createThreatDetector, type DetectorSettings, type Severity, type ThreatFlag } from '../../src/threats/detector.ts';
import type { Observation } from '../../src/threats/signals.ts';
import { createMemoryThreatState } from '../../src/storage/embedded/threat-state.ts';

/*
 * The threat detector replayed against days of synthetic traffic: several TPPs with their own
 * volumes, daily rhythms, batch jobs, customers, source ranges and a trickle of honest errors, plus
 * customers signing in (and mistyping). Attacks are injected at known times; the report says which
 * were caught, how fast, and every flag raised outside an attack (false positives).
 *
 * The detector is Moat's own (src/threats), with the production defaults unless overridden, on the
 * in-memory state; time is simulated, so a week runs in seconds. A seeded PRNG makes a run repeatable.
 */

export type AttackKind = 'scraping-spike' | 'slow-scrape' | 'scope-probing' | 'code-replay-storm' | 'credential-stuffing' | 'distributed-credential-stuffing';

export interface TppProfile {
  clientId: string;
  /** Token requests per minute at the daily peak. */
  peakPerMinute: number;
  /** Share of the peak at night (00:00–06:00 UTC). */
  nightShare: number;
  /** A nightly batch at this UTC hour: `batchFactor` times the usual volume for that hour. */
  batchHour?: number;
  batchFactor?: number;
  customers: number;
  ranges: string[];
}

export interface Attack {
  kind: AttackKind;
  /** The TPP attacked (or acting): undefined for attacks on the login page. */
  clientId?: string;
  startMinute: number;
  minutes: number;
}

export interface SimulationOptions {
  seed: number;
  days: number;
  /** Days at the start without attacks (the detector learns). */
  learningDays: number;
  tpps: TppProfile[];
  attacks: Attack[];
  /** Failed sign-ins per minute at the daily peak, bank-wide (mistyped passwords). */
  loginFailuresPeak: number;
  settings: DetectorSettings;
}

export interface AttackOutcome extends Attack {
  detected: boolean;
  /** Seconds from the attack's first request to its first flag. */
  secondsToDetect?: number;
  firstFlag?: Pick<ThreatFlag, 'signal' | 'severity' | 'explanation'>;
  /** The most severe flag the attack drew: what Moat's responses would have done. */
  maxSeverity?: Severity;
  /** Seconds from the attack's first request to its first flag of that severity. */
  secondsToMostSevere?: number;
}

export interface SimulationReport {
  seed: number;
  days: number;
  learningDays: number;
  tpps: number;
  requests: number;
  attacks: AttackOutcome[];
  byKind: Record<
    string,
    { injected: number; detected: number; medianSecondsToDetect: number | null; medianSecondsToMostSevere: number | null; severities: Record<Severity, number> }
  >;
  falsePositives: {
    total: number;
    bySeverity: Record<Severity, number>;
    perTppDay: number;
    examples: Pick<ThreatFlag, 'entity' | 'signal' | 'severity' | 'explanation'>[];
  };
  detectionRate: number;
}

/** mulberry32: small, fast, good enough to make synthetic traffic repeatable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function poisson(mean: number, random: () => number): number {
  if (mean <= 0) return 0;
  if (mean > 50) return Math.max(0, Math.round(mean + Math.sqrt(mean) * gaussian(random)));
  const limit = Math.exp(-mean);
  let k = 0;
  for (let p = random(); p > limit; p *= random()) k += 1;
  return k;
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(random() || 1e-12)) * Math.cos(2 * Math.PI * random());
}

/** A working-day rhythm: quiet at night, rising through the morning, peak in the afternoon. */
function rhythm(hour: number, nightShare: number): number {
  if (hour < 6) return nightShare;
  if (hour < 9) return nightShare + (1 - nightShare) * ((hour - 5) / 4);
  if (hour < 18) return 1;
  return Math.max(nightShare, 1 - (hour - 17) * 0.15);
}

const ATTACKER_RANGE = '203.0.113';
const BOTNET_RANGES = 40;

export async function runThreatSimulation(options: SimulationOptions): Promise<SimulationReport> {
  const random = prng(options.seed);
  const flags: ThreatFlag[] = [];
  const detector = createThreatDetector({
    state: createMemoryThreatState(),
    settings: options.settings,
    onFlag: (f) => {
      flags.push(f);
    },
  });
  const bucketMs = options.settings.bucketSeconds * 1000;
  const minutes = options.days * 1440;
  const start = Date.UTC(2026, 0, 5); // a Monday, 00:00 UTC
  let requests = 0;

  for (let minute = 0; minute < minutes; minute += 1) {
    const minuteStart = start + minute * 60_000;
    const hour = new Date(minuteStart).getUTCHours();
    const events: Observation[] = [];
    const at = () => new Date(minuteStart + Math.floor(random() * 60_000));

    for (const tpp of options.tpps) {
      let factor = rhythm(hour, tpp.nightShare);
      if (tpp.batchHour === hour) factor *= tpp.batchFactor ?? 1;
      const tokens = poisson(tpp.peakPerMinute * factor, random);
      const address = () => `${tpp.ranges[Math.floor(random() * tpp.ranges.length)]}.${1 + Math.floor(random() * 250)}`;
      const customer = () => `${tpp.clientId}-customer-${Math.floor(random() * tpp.customers)}`;
      for (let i = 0; i < tokens; i += 1) {
        // Honest errors: a lost race, a mistyped scope now and then.
        const r = random();
        const outcome = r < 0.003 ? 'invalid_grant' : r < 0.004 ? 'invalid_scope' : 'ok';
        events.push({ at: at(), clientId: tpp.clientId, address: address(), endpoint: 'token', outcome, customerId: customer() });
      }
      for (let i = poisson(tpp.peakPerMinute * factor * 0.4, random); i > 0; i -= 1) {
        events.push({ at: at(), clientId: tpp.clientId, address: address(), endpoint: 'par', outcome: 'ok' });
      }
    }
    for (let i = poisson(options.loginFailuresPeak * rhythm(hour, 0.1), random); i > 0; i -= 1) {
      events.push({ at: at(), address: `198.51.${Math.floor(random() * 250)}.${1 + Math.floor(random() * 250)}`, endpoint: 'login', outcome: 'login_failed' });
    }

    for (const attack of options.attacks) {
      if (minute < attack.startMinute || minute >= attack.startMinute + attack.minutes) continue;
      const onset = minute === attack.startMinute;
      // The attack's first request opens its minute: time to detect counts from it.
      const when = (i: number) => (onset && i === 0 ? new Date(minuteStart) : at());
      const tpp = options.tpps.find((t) => t.clientId === attack.clientId);
      switch (attack.kind) {
        case 'scraping-spike': // stolen credentials pulling every customer's data from a new host
          for (let i = 0; i < tpp!.peakPerMinute * 8; i += 1) {
            events.push({
              at: when(i),
              clientId: tpp!.clientId,
              address: `${ATTACKER_RANGE}.${7 + (i % 3)}`,
              endpoint: 'token',
              outcome: 'ok',
              customerId: `${tpp!.clientId}-customer-${Math.floor(random() * tpp!.customers)}`,
            });
          }
          break;
        case 'slow-scrape': // the same, trickled: two and a half times the usual volume, for half an hour
          for (let i = 0; i < Math.round(tpp!.peakPerMinute * 1.5); i += 1) {
            events.push({
              at: when(i),
              clientId: tpp!.clientId,
              address: `${tpp!.ranges[0]}.${7 + (i % 3)}`,
              endpoint: 'token',
              outcome: 'ok',
              customerId: `${tpp!.clientId}-customer-${Math.floor(random() * tpp!.customers)}`,
            });
          }
          break;
        case 'scope-probing':
          for (let i = 0; i < 12; i += 1)
            events.push({
              at: when(i),
              clientId: tpp!.clientId,
              address: `${tpp!.ranges[0]}.9`,
              endpoint: 'par',
              outcome: i % 2 === 0 ? 'invalid_scope' : 'invalid_authorization_details',
            });
          break;
        case 'code-replay-storm':
          for (let i = 0; i < 25; i += 1)
            events.push({ at: when(i), clientId: tpp!.clientId, address: `${tpp!.ranges[0]}.9`, endpoint: 'token', outcome: 'invalid_grant' });
          break;
        case 'credential-stuffing':
          for (let i = 0; i < 120; i += 1)
            events.push({ at: when(i), address: `${ATTACKER_RANGE}.${1 + (i % 250)}`, endpoint: 'login', outcome: 'login_failed' });
          break;
        case 'distributed-credential-stuffing': // a botnet: a few attempts from each of many ranges
          for (let i = 0; i < 60; i += 1)
            events.push({ at: when(i), address: `192.0.${i % BOTNET_RANGES}.${1 + Math.floor(random() * 250)}`, endpoint: 'login', outcome: 'login_failed' });
          break;
      }
    }

    events.sort((a, b) => a.at.getTime() - b.at.getTime());
    for (const e of events) await detector.observe(e);
    requests += events.length;
    // Buckets close on the minute; every instance's timer folds a little after.
    await detector.evaluate(new Date(minuteStart + 60_000 + Math.floor(bucketMs / 4)));
  }

  return report(options, flags, requests, start);
}

function entityOf(attack: Attack): (f: ThreatFlag) => boolean {
  switch (attack.kind) {
    case 'credential-stuffing':
      return (f) => f.entity === `range:${ATTACKER_RANGE}.0/24` || f.entity === 'login';
    case 'distributed-credential-stuffing':
      return (f) => f.entity === 'login' || f.entity.startsWith('range:192.0.');
    default:
      return (f) => f.clientId === attack.clientId;
  }
}

function report(options: SimulationOptions, flags: ThreatFlag[], requests: number, start: number): SimulationReport {
  const windows = options.attacks.map((a) => ({
    attack: a,
    from: start + a.startMinute * 60_000,
    // Flags up to two buckets after the attack's end still belong to it (closing-bucket judgement).
    to: start + (a.startMinute + a.minutes) * 60_000 + 2 * options.settings.bucketSeconds * 1000,
  }));
  const outcomes: AttackOutcome[] = windows.map(({ attack, from, to }) => {
    const mine = entityOf(attack);
    const during = flags.filter((f) => mine(f) && f.at.getTime() >= from && f.at.getTime() <= to).sort((a, b) => a.at.getTime() - b.at.getTime());
    const first = during[0];
    const maxSeverity = (['high', 'medium', 'low'] as const).find((s) => during.some((f) => f.severity === s));
    return {
      ...attack,
      detected: first !== undefined,
      ...(first === undefined
        ? {}
        : {
            secondsToDetect: Math.round((first.at.getTime() - from) / 1000),
            firstFlag: { signal: first.signal, severity: first.severity, explanation: first.explanation },
          }),
      ...(maxSeverity === undefined
        ? {}
        : {
            maxSeverity,
            secondsToMostSevere: Math.round((during.find((f) => f.severity === maxSeverity)!.at.getTime() - from) / 1000),
          }),
    };
  });
  const explained = (f: ThreatFlag) => windows.some(({ attack, from, to }) => entityOf(attack)(f) && f.at.getTime() >= from && f.at.getTime() <= to);
  const falsePositives = flags.filter((f) => !explained(f));
  const byKind: SimulationReport['byKind'] = {};
  for (const o of outcomes) {
    const k = byKind[o.kind] ?? {
      injected: 0,
      detected: 0,
      medianSecondsToDetect: null,
      medianSecondsToMostSevere: null,
      severities: { low: 0, medium: 0, high: 0 },
    };
    k.injected += 1;
    if (o.maxSeverity !== undefined) k.severities[o.maxSeverity] += 1;
    if (o.detected) k.detected += 1;
    byKind[o.kind] = k;
  }
  for (const [kind, k] of Object.entries(byKind)) {
    const times = outcomes
      .filter((o) => o.kind === kind && o.secondsToDetect !== undefined)
      .map((o) => o.secondsToDetect!)
      .sort((a, b) => a - b);
    k.medianSecondsToDetect = times.length === 0 ? null : times[Math.floor((times.length - 1) / 2)]!;
    const toWorst = outcomes
      .filter((o) => o.kind === kind && o.secondsToMostSevere !== undefined)
      .map((o) => o.secondsToMostSevere!)
      .sort((a, b) => a - b);
    k.medianSecondsToMostSevere = toWorst.length === 0 ? null : toWorst[Math.floor((toWorst.length - 1) / 2)]!;
  }
  const bySeverity: Record<Severity, number> = { low: 0, medium: 0, high: 0 };
  for (const f of falsePositives) bySeverity[f.severity] += 1;
  const judgedDays = options.days - options.learningDays;
  return {
    seed: options.seed,
    days: options.days,
    learningDays: options.learningDays,
    tpps: options.tpps.length,
    requests,
    attacks: outcomes,
    byKind,
    falsePositives: {
      total: falsePositives.length,
      bySeverity,
      perTppDay: Number((falsePositives.length / Math.max(1, options.tpps.length * judgedDays)).toFixed(3)),
      examples: falsePositives.slice(0, 10).map(({ entity, signal, severity, explanation }) => ({ entity, signal, severity, explanation })),
    },
    detectionRate: outcomes.length === 0 ? 1 : outcomes.filter((o) => o.detected).length / outcomes.length,
  };
}

/** Six TPPs of different sizes and habits (one with a nightly batch at 02:00). */
export function standardTpps(): TppProfile[] {
  return [
    { clientId: 'tpp-aggregator', peakPerMinute: 40, nightShare: 0.15, customers: 5000, ranges: ['10.1.1', '10.1.2'] },
    { clientId: 'tpp-budgeting', peakPerMinute: 12, nightShare: 0.05, customers: 800, ranges: ['10.2.1'] },
    { clientId: 'tpp-lender', peakPerMinute: 4, nightShare: 0.02, customers: 300, ranges: ['10.3.1'] },
    { clientId: 'tpp-accounting', peakPerMinute: 8, nightShare: 0.1, batchHour: 2, batchFactor: 12, customers: 400, ranges: ['10.4.1', '10.4.2', '10.4.3'] },
    { clientId: 'tpp-payments', peakPerMinute: 20, nightShare: 0.2, customers: 2000, ranges: ['10.5.1'] },
    { clientId: 'tpp-small', peakPerMinute: 1, nightShare: 0.0, customers: 50, ranges: ['10.6.1'] },
  ];
}

/** Each kind of attack several times, spread over the judged days at seeded times. */
export function standardAttacks(options: { seed: number; days: number; learningDays: number; tpps: TppProfile[]; perKind: number }): Attack[] {
  const random = prng(options.seed ^ 0x5eed);
  const kinds: [AttackKind, number, boolean][] = [
    ['scraping-spike', 10, true],
    ['slow-scrape', 30, true],
    ['scope-probing', 5, true],
    ['code-replay-storm', 3, true],
    ['credential-stuffing', 10, false],
    ['distributed-credential-stuffing', 10, false],
  ];
  const attacks: Attack[] = [];
  const firstMinute = options.learningDays * 1440;
  const span = (options.days - options.learningDays) * 1440 - 30;
  for (const [kind, minutes, onTpp] of kinds) {
    for (let i = 0; i < options.perKind; i += 1) {
      const tpp = options.tpps[Math.floor(random() * options.tpps.length)]!;
      attacks.push({ kind, ...(onTpp ? { clientId: tpp.clientId } : {}), startMinute: firstMinute + Math.floor(random() * span), minutes });
    }
  }
  return attacks.sort((a, b) => a.startMinute - b.startMinute);
}

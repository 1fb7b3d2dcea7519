import { Redis } from 'ioredis';
import { createThreatDetector, DEFAULT_RULES, type DetectorSettings, type ThreatFlag } from '../../src/threats/detector.ts';
import { sourceRange, type Observation } from '../../src/threats/signals.ts';
import type { ThreatState } from '../../src/threats/threat-state.ts';
import { createMemoryThreatState } from '../../src/storage/embedded/threat-state.ts';
import { createRedisThreatState } from '../../src/storage/redis/threat-state.ts';
import { withServices, redisTestPrefix } from '../support/databases.ts';

/*
 * The detector on its shared state — in memory, and in Redis where two instances count into the
 * same buckets: it stays silent while it learns, flags a spike on the request that crosses the line
 * (not when the bucket closes), escalates, explains, and raises each flag once across instances.
 */

const settings: DetectorSettings = {
  bucketSeconds: 60,
  warmupBuckets: 30,
  alpha: 2 / 31,
  hourlyAlpha: 0.1,
  hourlyMinimum: 1000,
  scores: { low: 6, medium: 10, high: 20 },
  rules: DEFAULT_RULES,
  maxRanges: 64,
};
const T0 = Date.UTC(2026, 10, 2, 12, 0, 0);

const backends: [string, () => Promise<{ state: () => ThreatState; close(): Promise<void> }>][] = [
  [
    'memory',
    async () => {
      const shared = createMemoryThreatState();
      return { state: () => shared, close: async () => {} };
    },
  ],
];
if (withServices()) {
  backends.push([
    'Redis',
    async () => {
      const { url, prefix, cleanup } = redisTestPrefix();
      const clients: Redis[] = [];
      return {
        state: () => {
          const redis = new Redis(url);
          clients.push(redis);
          return createRedisThreatState(redis, prefix, settings.bucketSeconds);
        },
        close: async () => {
          for (const c of clients) c.disconnect();
          await cleanup();
        },
      };
    },
  ]);
}

describe.each(backends)('the threat detector on %s', (_name, open) => {
  let backend: Awaited<ReturnType<typeof open>>;
  beforeEach(async () => {
    backend = await open();
  });
  afterEach(() => backend.close());

  /** Two instances (two detectors) on the same state; flags from either. */
  function instances() {
    const flags: ThreatFlag[] = [];
    const make = () =>
      createThreatDetector({
        state: backend.state(),
        settings,
        onFlag: (f) => {
          flags.push(f);
        },
      });
    return { a: make(), b: make(), flags };
  }

  const token = (minute: number, second: number, extra: Partial<Observation> = {}): Observation => ({
    at: new Date(T0 + minute * 60_000 + second * 1000),
    clientId: 'tpp-1',
    address: '10.1.1.5',
    endpoint: 'token',
    outcome: 'ok',
    ...extra,
  });

  /** `minutes` of 10 requests a minute, spread over two instances, each minute folded. */
  async function normalTraffic(d: ReturnType<typeof instances>, minutes: number, first = 0) {
    for (let m = first; m < first + minutes; m += 1) {
      for (let i = 0; i < 10; i += 1) await (i % 2 === 0 ? d.a : d.b).observe(token(m, i * 5));
      await d.a.evaluate(new Date(T0 + (m + 1) * 60_000 + 15_000));
      await d.b.evaluate(new Date(T0 + (m + 1) * 60_000 + 15_000));
    }
  }

  it('learns quietly through the warm-up, even through a spike', async () => {
    const d = instances();
    await normalTraffic(d, 5);
    for (let i = 0; i < 300; i += 1) await d.a.observe(token(5, i / 10));
    await d.a.evaluate(new Date(T0 + 6 * 60_000 + 15_000));
    expect(d.flags).toEqual([]);
  });

  it('flags a spike on the request that crosses the line, escalating, once across instances, with its explanation', async () => {
    const d = instances();
    await normalTraffic(d, 40);
    expect(d.flags).toEqual([]);
    // Minute 40: 300 requests in its first 30 seconds, through both instances.
    for (let i = 0; i < 300; i += 1) await (i % 2 === 0 ? d.a : d.b).observe(token(40, i / 10));
    expect(d.flags.map((f) => f.severity)).toEqual(['low', 'medium', 'high']);
    const high = d.flags[2]!;
    expect(high).toEqual(expect.objectContaining({ entity: 'client:tpp-1', clientId: 'tpp-1', signal: 'requests:token', kind: 'baseline' }));
    // Caught while the bucket was still filling: well before the minute ended.
    expect(high.at.getTime()).toBeLessThan(T0 + 40 * 60_000 + 30_000);
    expect(high.expected).toBeCloseTo(10, 0);
    expect(high.explanation).toMatch(
      /^requests to token: \d+ in this 60 s bucket, expected about 10(\.\d+)? \(± [\d.]+\) at 12:00 UTC — [\d.]+ spreads above normal$/,
    );
    // Closing the bucket (both instances try) adds nothing: the flags were raised already.
    await d.a.evaluate(new Date(T0 + 41 * 60_000 + 15_000));
    await d.b.evaluate(new Date(T0 + 41 * 60_000 + 15_000));
    expect(d.flags).toHaveLength(3);
    // The attack was learned only up to the alert line: the next normal minute is not an anomaly,
    // and the next spike is still one.
    await normalTraffic(d, 1, 41);
    expect(d.flags).toHaveLength(3);
    for (let i = 0; i < 300; i += 1) await d.a.observe(token(42, i / 10));
    expect(d.flags.filter((f) => f.severity === 'high')).toHaveLength(2);
  });

  it('applies rules from the first request: a replay storm needs no baseline', async () => {
    const d = instances();
    for (let i = 0; i < 20; i += 1) await d.a.observe(token(0, i, { outcome: 'invalid_grant' }));
    expect(d.flags).toEqual([
      expect.objectContaining({
        signal: 'errors:invalid_grant',
        severity: 'high',
        kind: 'rule',
        seen: 20,
        explanation: 'a storm of invalid_grant (replayed authorization codes or refresh tokens): 20 in one 60 s bucket (the rule allows at most 19)',
      }),
    ]);
  });

  it('reports a source range the client has never used, once it knows its ranges', async () => {
    const d = instances();
    await normalTraffic(d, 31);
    await d.a.observe(token(31, 1, { address: '203.0.113.9' }));
    await d.b.observe(token(31, 2, { address: '203.0.113.10' }));
    expect(d.flags).toEqual([
      expect.objectContaining({
        signal: 'new_source_range:203.0.113.0/24',
        severity: 'low',
        explanation: expect.stringMatching(/203\.0\.113\.0\/24, a source range this client has not used before \(1 known\)/),
      }),
    ]);
  });

  it('counts failed customer sign-ins per source range: credential stuffing from one range', async () => {
    const d = instances();
    for (let i = 0; i < 30; i += 1)
      await d.a.observe({ at: new Date(T0 + i * 1000), address: `198.51.100.${i + 1}`, endpoint: 'login', outcome: 'login_failed' });
    expect(d.flags).toEqual([expect.objectContaining({ entity: 'range:198.51.100.0/24', signal: 'login_failures', severity: 'high', kind: 'rule' })]);
  });
});

it('groups addresses into the ranges a TPP or a botnet sits in', () => {
  expect(sourceRange('10.1.2.3')).toBe('10.1.2.0/24');
  expect(sourceRange('::ffff:10.1.2.3')).toBe('10.1.2.0/24');
  expect(sourceRange('2001:db8:abcd:12::1')).toBe('2001:db8:abcd::/48');
  expect(sourceRange('not an address')).toBe('unknown');
});

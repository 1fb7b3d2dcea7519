import { Redis } from 'ioredis';
import { createMemoryThreatState } from '../../src/storage/embedded/threat-state.ts';
import { createRedisThreatState } from '../../src/storage/redis/threat-state.ts';
import { createThreatDetector, DEFAULT_RULES, type DetectorSettings, type ThreatFlag } from '../../src/threats/detector.ts';
import type { Observation } from '../../src/threats/signals.ts';
import type { ThreatState } from '../../src/threats/threat-state.ts';
import { withServices, redisTestPrefix } from '../support/databases.ts';

/*
 * The detector counts observations in batches (issue 20: one Redis command per batch instead of a
 * MULTI of ~10 commands per entity) without changing what it decides: every request is counted,
 * and a rule still fires on the one request that crosses its line when many arrive at once.
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

const replay = (second: number, clientId: string): Observation => ({
  at: new Date(T0 + second * 100),
  clientId,
  address: '10.1.1.5',
  endpoint: 'token',
  outcome: 'invalid_grant',
});

const backends: [string, () => Promise<{ state: ThreatState; redis?: Redis; prefix?: string; close(): Promise<void> }>][] = [
  ['memory', async () => ({ state: createMemoryThreatState(), close: async () => {} })],
];
if (withServices()) {
  backends.push([
    'Redis',
    async () => {
      const { url, prefix, cleanup } = redisTestPrefix();
      const redis = new Redis(url);
      return {
        state: createRedisThreatState(redis, prefix, settings.bucketSeconds),
        redis,
        prefix,
        close: async () => {
          redis.disconnect();
          await cleanup();
        },
      };
    },
  ]);
}

describe.each(backends)('batched threat counting on %s', (_name, open) => {
  let backend: Awaited<ReturnType<typeof open>>;
  beforeEach(async () => {
    backend = await open();
  });
  afterEach(() => backend.close());

  it('fires the invalid_grant rule once, on the 20th of 50 replays sent at once, and counts all 50', async () => {
    const flags: ThreatFlag[] = [];
    const detector = createThreatDetector({ state: backend.state, settings, onFlag: (f) => void flags.push(f) });
    await Promise.all(Array.from({ length: 50 }, (_, i) => detector.observe(replay(i, 'tpp-burst'))));
    expect(flags).toEqual([expect.objectContaining({ entity: 'client:tpp-burst', signal: 'errors:invalid_grant', severity: 'high', kind: 'rule', seen: 20 })]);
    const bucket = Math.floor(T0 / 1000 / settings.bucketSeconds);
    expect(await backend.state.counts(bucket, 'client:tpp-burst')).toEqual({ 'requests:token': 50, 'errors:invalid_grant': 50, source_ranges: 1 });
  });

  it('keeps two clients apart within one batch', async () => {
    const flags: ThreatFlag[] = [];
    const detector = createThreatDetector({ state: backend.state, settings, onFlag: (f) => void flags.push(f) });
    await Promise.all(Array.from({ length: 38 }, (_, i) => detector.observe(replay(i, i % 2 === 0 ? 'tpp-a' : 'tpp-b'))));
    expect(flags).toEqual([]);
    await detector.observe(replay(40, 'tpp-b'));
    expect(flags).toEqual([expect.objectContaining({ entity: 'client:tpp-b', seen: 20 })]);
  });
});

if (withServices()) {
  it('sends Redis one command for an observation that counts under three entities', async () => {
    const { url, prefix, cleanup } = redisTestPrefix();
    const redis = new Redis(url);
    // ioredis marks a connection as monitoring only once MONITOR's OK has been handled (a promise
    // later), so another test's command that Redis reports in the same read as the OK reaches it as
    // a reply to nothing and is emitted as a "Command queue state error". Those lines come before
    // the monitoring event and are other clients' commands, not the ones counted below.
    const monitor = new Redis(url, { monitor: true });
    const monitorErrors: Error[] = [];
    monitor.on('error', (error: Error) => monitorErrors.push(error));
    await new Promise<void>((resolve) => monitor.once('monitoring', () => resolve()));
    try {
      const detector = createThreatDetector({ state: createRedisThreatState(redis, prefix, settings.bucketSeconds), settings, onFlag: () => {} });
      // The script is loaded once (EVAL after a NOSCRIPT); what is measured is every later observation.
      await detector.observe(replay(0, 'tpp-warm'));
      const sent: string[][] = [];
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        // Commands a script runs are reported with the source `lua`; the client's own with its address.
        if (source !== 'lua' && args.some((a) => a.startsWith(`${prefix}threat:c:`) && a.endsWith(':client:tpp-1'))) sent.push(args);
      });
      // A failed sign-in by a client's customer: the client, the source range and the login page.
      await detector.observe({ at: new Date(T0 + 1000), clientId: 'tpp-1', address: '198.51.100.7', endpoint: 'login', outcome: 'login_failed' });
      await redis.ping();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(monitorErrors.filter((e) => !e.message.startsWith('Command queue state error'))).toEqual([]);
      expect(sent).toHaveLength(1);
      expect(sent[0]![0]!.toLowerCase()).toBe('evalsha');
      expect(await redis.hgetall(`${prefix}threat:c:${Math.floor((T0 + 1000) / 60_000)}:range:198.51.100.0/24`)).toEqual({ login_failures: '1' });
    } finally {
      monitor.disconnect();
      redis.disconnect();
      await cleanup();
    }
  });
}

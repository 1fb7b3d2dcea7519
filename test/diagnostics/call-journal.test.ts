import { connectRedis } from '../../src/storage/redis/redis-client.ts';
import type { CallJournal } from '../../src/diagnostics/call-journal.ts';
import { createMemoryCallJournal } from '../../src/storage/embedded/call-journal.ts';
import { createRedisCallJournal } from '../../src/storage/redis/call-journal.ts';
import type { CallRecord } from '../../src/diagnostics/call-record.ts';
import { withServices, redisTestPrefix } from '../support/databases.ts';

/*
 * The journal behind /diagnostics/calls, on both its stores. A reader here is a certificate other
 * than the one that made the client's call (the client's second, or rotated, certificate), so the
 * client's call can be found only under the client — which calls that merely name the client must
 * not be able to push out.
 */

const PER_OWNER = 3;
let n = 0;
function record(fields: Partial<CallRecord>): CallRecord {
  n += 1;
  return {
    interactionId: `ia-${n}`,
    requestId: `rq-${n}`,
    at: new Date(Date.UTC(2026, 11, 3, 12, 0, n)).toISOString(),
    method: 'POST',
    path: '/token',
    status: 200,
    outcome: 'ok',
    ...fields,
  };
}
const certificate = (thumbprint: string) => ({
  via: 'tls' as const,
  subject: 'CN=x',
  issuer: 'CN=ca',
  serialNumber: '01',
  'x5t#S256': thumbprint,
  notBefore: '2026-01-01T00:00:00.000Z',
  notAfter: '2027-01-01T00:00:00.000Z',
  chainTrusted: true,
});

function describeJournal(name: string, open: () => Promise<{ journal: CallJournal; close(): Promise<void> }>): void {
  describe(`${name} call journal`, () => {
    let journal: CallJournal;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ journal, close } = await open());
    });
    afterAll(async () => {
      await close?.();
    });

    it("keeps a client's own calls in view however many calls only name it", async () => {
      const clientId = `client-${name}-${n}`;
      const own = record({ clientId, madeByClient: true, certificate: certificate('first-certificate') });
      await journal.record(own);
      const flood = Array.from({ length: 10 }, () => record({ clientId, madeByClient: false, status: 401, outcome: 'mtls_no_certificate' }));
      for (const r of flood) await journal.record(r);

      const seen = await journal.recent({ thumbprints: ['second-certificate'], clientIds: [clientId] }, 100);
      expect(seen.made.map((r) => r.requestId)).toEqual([own.requestId]);
      // Each list keeps its own PER_OWNER newest.
      expect(seen.named.map((r) => r.requestId)).toEqual(
        flood
          .slice(-PER_OWNER)
          .reverse()
          .map((r) => r.requestId),
      );
    });

    it('lists a call once, as made, when it is in both lists of a reader', async () => {
      const clientId = `client-${name}-${n}`;
      const other = `other-${name}-${n}`;
      // Made by one client with its certificate, naming another client the reader also owns.
      const thumbprint = `cert-${name}-${n}`;
      const both = record({ clientId: other, madeByClient: false, certificate: certificate(thumbprint) });
      await journal.record(both);
      const seen = await journal.recent({ thumbprints: [thumbprint], clientIds: [clientId, other] }, 100);
      expect(seen.made.map((r) => r.requestId)).toEqual([both.requestId]);
      expect(seen.named).toEqual([]);
    });
  });
}

describeJournal('in-process', async () => ({ journal: createMemoryCallJournal({ retentionSeconds: 60, perOwner: PER_OWNER }), close: async () => {} }));

if (!withServices()) {
  it.skip('Redis call journal (embedded-only run)', () => {});
} else {
  describeJournal('Redis', async () => {
    const prefix = redisTestPrefix();
    const redis = await connectRedis(prefix.url);
    return {
      journal: createRedisCallJournal(redis, prefix.prefix, { retentionSeconds: 60, perOwner: PER_OWNER }),
      close: async () => {
        redis.disconnect();
        await prefix.cleanup();
      },
    };
  });
}

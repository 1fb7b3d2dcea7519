import type { Redis } from 'ioredis';
import type { CallRecord } from '../../diagnostics/call-record.ts';
import { keysOf, PER_INTERACTION, recentFrom, type CallJournal, type JournalOptions } from '../../diagnostics/call-journal.ts';

/** Call records in Redis lists, so every instance answers for calls any instance served. */
export function createRedisCallJournal(redis: Redis, prefix: string, options: JournalOptions): CallJournal {
  const p = `${prefix}diag:`;
  const read = async (key: string, count: number) => (await redis.lrange(`${p}${key}`, 0, count - 1)).map((json) => JSON.parse(json) as CallRecord);
  return {
    async record(record) {
      const json = JSON.stringify(record);
      const multi = redis.multi();
      for (const key of keysOf(record)) {
        const cap = key.startsWith('call:') ? PER_INTERACTION : options.perOwner;
        multi
          .lpush(`${p}${key}`, json)
          .ltrim(`${p}${key}`, 0, cap - 1)
          .expire(`${p}${key}`, options.retentionSeconds);
      }
      await multi.exec();
    },
    byInteractionId: (interactionId) => read(`call:${interactionId}`, PER_INTERACTION),
    recent: (owners, limit) => recentFrom(owners, limit, async (keys) => (await Promise.all(keys.map((key) => read(key, limit)))).flat()),
  };
}

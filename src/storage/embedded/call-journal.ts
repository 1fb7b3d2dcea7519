import type { CallRecord } from '../../diagnostics/call-record.ts';
import { keysOf, PER_INTERACTION, recentFrom, type CallJournal, type JournalOptions } from '../../diagnostics/call-journal.ts';

/** Keys kept in memory at most; the oldest go first (a sandbox runs a handful of TPPs). */
const MEMORY_KEYS = 10_000;

export function createMemoryCallJournal(options: JournalOptions, now: () => number = Date.now): CallJournal {
  const lists = new Map<string, { expires: number; records: CallRecord[] }>();
  const live = (key: string) => {
    const entry = lists.get(key);
    if (entry !== undefined && entry.expires <= now()) lists.delete(key);
    return entry !== undefined && entry.expires > now() ? entry.records : [];
  };
  return {
    async record(record) {
      for (const key of keysOf(record)) {
        const cap = key.startsWith('call:') ? PER_INTERACTION : options.perOwner;
        const records = [record, ...live(key)].slice(0, cap);
        // Re-inserted, so the Map's order is least recently written first.
        lists.delete(key);
        lists.set(key, { expires: now() + options.retentionSeconds * 1000, records });
      }
      for (const key of lists.keys()) {
        if (lists.size <= MEMORY_KEYS) break;
        lists.delete(key);
      }
    },
    byInteractionId: async (interactionId) => live(`call:${interactionId}`),
    recent: (owners, limit) => recentFrom(owners, limit, async (keys) => keys.flatMap((key) => live(key))),
  };
}

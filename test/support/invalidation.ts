import type { InvalidationBus, InvalidationTopic } from '../../src/caching/invalidation.ts';

/**
 * Resolves when `bus` hears that `topic:key` changed: a test waits for the announcement itself,
 * never for a time. Subscribe (call this) before making the change.
 */
export function heard(bus: InvalidationBus, topic: InvalidationTopic, key: string): Promise<void> {
  return new Promise((resolve) => {
    const stop = bus.subscribe({
      invalidate: (t, k) => {
        if (t === topic && k === key) {
          stop();
          resolve();
        }
      },
      reset: () => {},
    });
  });
}

import { AggregatorRegistry } from 'prom-client';
import { createMetrics } from '../../src/observability/metrics.ts';
import { sampleSum } from '../support/admin-metrics.ts';

/*
 * In cluster mode the primary merges the workers' registries with prom-client's AggregatorRegistry
 * (src/cluster/cluster.ts). Here two workers' real registries are merged the same way: storage
 * errors add up, readiness is the worst worker's, and a count read from the shared database is
 * reported once.
 */

describe('metrics merged across cluster workers', () => {
  it('sums storage errors, reports the lowest readiness and one consent count', async () => {
    const workers = [createMetrics(), createMetrics()];
    workers[0]!.attachSources({ activeConsents: async () => 3, certificates: async () => [], ready: async () => {} });
    workers[1]!.attachSources({
      activeConsents: async () => 3,
      certificates: async () => [],
      ready: async () => {
        throw new Error('postgres is unavailable');
      },
    });
    workers[0]!.storageErrors('postgres', 'query');
    workers[1]!.storageErrors('postgres', 'query');
    workers[1]!.storageErrors('redis', 'connection');

    const merged = await AggregatorRegistry.aggregate(await Promise.all(workers.map((w) => w.registry.getMetricsAsJSON()))).metrics();
    expect(sampleSum(merged, 'moat_storage_errors_total', { backend: 'postgres', operation: 'query' })).toBe(2);
    expect(sampleSum(merged, 'moat_storage_errors_total', { backend: 'redis' })).toBe(1);
    expect(sampleSum(merged, 'moat_ready')).toBe(0);
    expect(sampleSum(merged, 'moat_consents_active')).toBe(3);
  });
});

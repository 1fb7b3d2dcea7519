import { createRequire } from 'node:module';
import type { Test } from '@jest/test-result';

// Jest's own default sequencer (a CommonJS module; its types describe the require() shape).
const { default: Sequencer } = createRequire(import.meta.url)('@jest/test-sequencer') as typeof import('@jest/test-sequencer');

/*
 * Starts the longest suites first, so a run ends with every worker busy rather than with one long
 * suite started late while the others idle (issue 15 §6). Jest does this by itself once its cache
 * holds each suite's last duration, but a fresh clone (CI) has no cache and Jest then orders by file
 * size: on one fresh-clone CI run the services pass started test/storage/migrations.test.ts (36 s)
 * and test/threats/simulator.test.ts (21 s) among the last, and the pass ended on them. The gain is
 * small (the passes are bound by the workers' total work; a schedule simulated from that run's
 * per-suite times ends ~3-5 s sooner), but it keeps a late long suite from setting the pass's end.
 *
 * The order: a suite that failed last time first (as Jest does), then by duration, longest first:
 * Jest's cached duration when it has one, else the estimate below; then the suites with neither,
 * largest file first (Jest's own fallback). The estimates are the suites that took 8 s or more on
 * the services pass of a fresh-clone `.ci/run` (2 cores, 3 workers; seconds, from Jest's per-suite
 * times; 2026-12-07, at 3db0984, on a VM slower than the one the first list came from). A new
 * suite that takes long belongs in the list; a stale estimate only costs time.
 */
export const ESTIMATED_SECONDS: ReadonlyMap<string, number> = new Map([
  ['test/e2e/customer-pages.test.ts', 126],
  ['test/e2e/passkeys.test.ts', 61],
  ['test/e2e/federated-sign-in-browser.test.ts', 50],
  ['test/integration/quick-start.test.ts', 42],
  ['test/scale/cluster.test.ts', 42],
  ['test/integration/keys-and-client-auth.test.ts', 32],
  ['test/passkeys/passkey-ceremonies.test.ts', 30],
  ['test/storage/migrations.test.ts', 27],
  ['test/integration/key-rotation.test.ts', 26],
  ['test/e2e/consent-journey.test.ts', 23],
  ['test/resilience/redis-outage.test.ts', 23],
  ['test/e2e/page-checks.test.ts', 23],
  ['test/integration/account-service.test.ts', 23],
  ['test/storage/pglite-cluster.test.ts', 23],
  ['test/e2e/bank-app.test.ts', 22],
  ['test/portal/developer-portal.test.ts', 22],
  ['test/threats/simulator.test.ts', 22],
  ['test/e2e/accounts-unavailable.test.ts', 21],
  ['test/consents/grant-management.test.ts', 20],
  ['test/integration/hsm-rotation.test.ts', 20],
  ['test/integration/hsm-signing.test.ts', 19],
  ['test/cli/cli.test.ts', 17],
  ['test/ci/use-node.test.ts', 16],
  ['test/resilience/postgres-outage.test.ts', 16],
  ['test/integration/federated-sign-in-mtls.test.ts', 15],
  ['test/acme/own-certificates.test.ts', 14],
  ['test/examples/tpp-client.test.ts', 14],
  ['test/e2e/error-page-kinds.test.ts', 13],
  ['test/integration/federated-sign-in.test.ts', 13],
  ['test/integration/interactions.test.ts', 13],
  ['test/integration/federated-payments.test.ts', 12],
  ['test/sca/totp.test.ts', 12],
  ['test/certificates/revocation-propagation.test.ts', 11],
  ['test/resilience/fuzz.test.ts', 11],
  ['test/scale/killed-instance.test.ts', 11],
  ['test/storage/model-store.test.ts', 11],
  ['test/integration/nginx-gateway.test.ts', 10],
  ['test/sca/pages-in-a-browser.test.ts', 10],
  ['test/scale/cache-invalidation.test.ts', 10],
  ['test/consents/intent-consents.test.ts', 9],
  ['test/gateway-check/gateway-check-nginx.test.ts', 9],
  ['test/integration/admin-api.test.ts', 9],
  ['test/integration/rate-limits.test.ts', 9],
  ['test/sca/acr-and-reauthentication.test.ts', 9],
  ['test/cli/certs.test.ts', 8],
  ['test/cli/diagnose/diagnose.test.ts', 8],
  ['test/consents/consent-decision.test.ts', 8],
  ['test/integration/branding.test.ts', 8],
  ['test/integration/dpop.test.ts', 8],
  ['test/integration/fapi-profiles.test.ts', 8],
  ['test/integration/hostile-input.test.ts', 8],
  ['test/integration/registration-management.test.ts', 8],
  ['test/sca/dynamic-linking.test.ts', 8],
]);

export default class LongestFirstSequencer extends Sequencer {
  override sort(tests: Array<Test>): Array<Test> {
    const estimate = (test: Test): number | undefined => {
      const cached = this._getCache(test)[test.path]?.[1];
      if (cached != null) return cached;
      const relative = test.path
        .slice(test.context.config.rootDir.length + 1)
        .split('\\')
        .join('/');
      const seconds = ESTIMATED_SECONDS.get(relative);
      return seconds == null ? undefined : seconds * 1000;
    };
    const size = (test: Test): number => test.context.hasteFS.getSize(test.path) ?? 0;
    const keyed = tests.map((test) => ({ test, failed: this._getCache(test)[test.path]?.[0] === 0, ms: estimate(test), bytes: size(test) }));
    keyed.sort((a, b) => {
      if (a.failed !== b.failed) return a.failed ? -1 : 1;
      if ((a.ms == null) !== (b.ms == null)) return a.ms == null ? 1 : -1;
      if (a.ms != null && b.ms != null && a.ms !== b.ms) return b.ms - a.ms;
      return b.bytes - a.bytes;
    });
    return keyed.map(({ test }) => test);
  }
}

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
 * largest file first (Jest's own fallback). The estimates are the suites that took 5 s or more on
 * the services pass of a fresh-clone `.ci/run` (2 cores, 3 workers; seconds, from Jest's per-suite
 * times). A new suite that takes long belongs in the list; a stale estimate only costs time.
 */
export const ESTIMATED_SECONDS: ReadonlyMap<string, number> = new Map([
  ['test/e2e/customer-pages.test.ts', 88],
  ['test/e2e/passkeys.test.ts', 38],
  ['test/passkeys/passkey-ceremonies.test.ts', 36],
  ['test/storage/migrations.test.ts', 36],
  ['test/e2e/federated-sign-in-browser.test.ts', 24],
  ['test/scale/cluster.test.ts', 22],
  ['test/integration/quick-start.test.ts', 21],
  ['test/threats/simulator.test.ts', 21],
  ['test/e2e/consent-journey.test.ts', 19],
  ['test/integration/hsm-rotation.test.ts', 17],
  ['test/integration/account-service.test.ts', 17],
  ['test/cli/cli.test.ts', 16],
  ['test/consents/intent-consents.test.ts', 15],
  ['test/integration/hsm-signing.test.ts', 14],
  ['test/integration/key-rotation.test.ts', 14],
  ['test/integration/interactions.test.ts', 14],
  ['test/ciba/ciba-poll.test.ts', 14],
  ['test/e2e/bank-app.test.ts', 13],
  ['test/storage/model-store.test.ts', 13],
  ['test/integration/federated-sign-in.test.ts', 12],
  ['test/acme/own-certificates.test.ts', 12],
  ['test/certificates/revocation-propagation.test.ts', 12],
  ['test/consents/rich-authorization-requests.test.ts', 12],
  ['test/e2e/error-page-kinds.test.ts', 11],
  ['test/consents/consent-decision.test.ts', 10],
  ['test/integration/keys-and-client-auth.test.ts', 10],
  ['test/ciba/ciba-details.test.ts', 10],
  ['test/portal/developer-portal.test.ts', 9],
  ['test/integration/admin-api.test.ts', 9],
  ['test/e2e/accounts-unavailable.test.ts', 9],
  ['test/cli/diagnose/diagnose.test.ts', 9],
  ['test/e2e/page-checks.test.ts', 9],
  ['test/consents/grant-management.test.ts', 9],
  ['test/integration/federated-sign-in-mtls.test.ts', 9],
  ['test/sca/dynamic-linking.test.ts', 9],
  ['test/consents/consent-dashboard.test.ts', 9],
  ['test/integration/rate-limits.test.ts', 9],
  ['test/sca/pages-in-a-browser.test.ts', 8],
  ['test/integration/discovery.test.ts', 8],
  ['test/integration/self-signed-client-auth.test.ts', 7],
  ['test/resilience/postgres-outage.test.ts', 7],
  ['test/integration/dpop.test.ts', 7],
  ['test/sandbox/sandbox-revocation.test.ts', 7],
  ['test/integration/observability.test.ts', 7],
  ['test/sca/acr-and-reauthentication.test.ts', 7],
  ['test/accounts/http-account-directory.test.ts', 7],
  ['test/integration/certificate-expiry-notices.test.ts', 7],
  ['test/resilience/audit-outage.test.ts', 6],
  ['test/audit/audited-flows.test.ts', 6],
  ['test/resilience/fuzz.test.ts', 6],
  ['test/gateway-check/gateway-check-nginx.test.ts', 6],
  ['test/consents/scope-consents.test.ts', 6],
  ['test/scale/two-instances.test.ts', 6],
  ['test/gateway-check/gateway-check-instances.test.ts', 6],
  ['test/diagnostics/call-diagnostics.test.ts', 6],
  ['test/integration/registration-management.test.ts', 6],
  ['test/integration/userinfo.test.ts', 6],
  ['test/sca/totp.test.ts', 5],
  ['test/scale/cache-invalidation.test.ts', 5],
  ['test/api-guard/api-guard.test.ts', 5],
  ['test/integration/federated-payments.test.ts', 5],
  ['test/threats/quarantine.test.ts', 5],
  ['test/scale/killed-instance.test.ts', 5],
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

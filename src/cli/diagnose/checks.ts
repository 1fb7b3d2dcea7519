/*
 * The checks `moat diagnose` runs, in the order a TPP's call travels: the server, its discovery
 * document, the TPP's own certificate (read locally, before it is presented anywhere), what the
 * server makes of that certificate, the client's authentication, the software statement, a pushed
 * authorization request and the binding of an access token. The first fault stops the run: what
 * follows depends on it, and one exact cause with its fix beats a page of consequences.
 */

/** Every check, in running order, with the words it is printed with. */
export const CHECKS = [
  { id: 'server-reachable', title: 'server reachable' },
  { id: 'server-trusted', title: 'server certificate trusted' },
  { id: 'discovery', title: 'discovery document' },
  { id: 'certificate-readable', title: 'certificate and key readable' },
  { id: 'key-matches-certificate', title: 'private key matches the certificate' },
  { id: 'certificate-validity', title: 'certificate within its validity' },
  { id: 'client-auth-eku', title: 'certificate allowed for TLS client authentication' },
  { id: 'trust-anchor', title: 'chain ends at a trust anchor the server accepts' },
  { id: 'revocation', title: 'certificate not revoked' },
  { id: 'client-authentication', title: 'client authentication (tls_client_auth)' },
  { id: 'software-statement', title: 'software statement' },
  { id: 'signing-key', title: 'signing key' },
  { id: 'pushed-authorization', title: 'pushed authorization request (PKCE S256)' },
  { id: 'token-binding', title: 'access token bound to the certificate' },
] as const;

export type CheckId = (typeof CHECKS)[number]['id'];

/** `skip`: not applicable with the inputs given (says why); `not-run`: after the first fault. */
export type CheckStatus = 'pass' | 'fail' | 'skip' | 'not-run';

/** What one check found. A failure always names its cause and the fix. */
export type CheckOutcome =
  | { status: 'pass' | 'skip'; summary: string; details?: Record<string, unknown> }
  | { status: 'fail'; summary: string; cause: string; fix: string; details?: Record<string, unknown> };

export type CheckResult = (CheckOutcome & { id: CheckId; title: string }) | { id: CheckId; title: string; status: 'not-run' };

export function pass(summary: string, details?: Record<string, unknown>): CheckOutcome {
  return { status: 'pass', summary, ...(details === undefined ? {} : { details }) };
}

export function skip(summary: string, details?: Record<string, unknown>): CheckOutcome {
  return { status: 'skip', summary, ...(details === undefined ? {} : { details }) };
}

export function fail(summary: string, cause: string, fix: string, details?: Record<string, unknown>): CheckOutcome {
  return { status: 'fail', summary, cause, fix, ...(details === undefined ? {} : { details }) };
}

/** One step of a run: a check id and what it does. */
export interface CheckStep {
  id: CheckId;
  run: () => Promise<CheckOutcome>;
}

function titleOf(id: CheckId): string {
  return CHECKS.find((c) => c.id === id)!.title;
}

/**
 * Runs the steps in order and stops at the first failure; the steps after it are reported as not
 * run. A step that throws is a failure of that step (an unexpected answer is still an answer).
 */
export async function runChecks(steps: readonly CheckStep[]): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let stopped = false;
  for (const step of steps) {
    const title = titleOf(step.id);
    if (stopped) {
      results.push({ id: step.id, title, status: 'not-run' });
      continue;
    }
    let outcome: CheckOutcome;
    try {
      outcome = await step.run();
    } catch (err) {
      outcome = fail('the check could not complete', (err as Error).message, 'fix the cause above and run moat diagnose again');
    }
    results.push({ id: step.id, title, ...outcome });
    if (outcome.status === 'fail') stopped = true;
  }
  return results;
}

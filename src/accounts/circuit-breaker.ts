/*
 * A circuit breaker for calls to a service Moat depends on. Closed: calls go through and
 * consecutive failures are counted. After `failureThreshold` of them it opens: calls are refused
 * at once, so a customer is not kept waiting on a service that is down and the service is not
 * hammered while it recovers. After `openMs` one call is let through (half-open): its success
 * closes the circuit, its failure opens it again for another `openMs`.
 */

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  failureThreshold: number;
  openMs: number;
  /** The clock, injected so tests move time instead of waiting. */
  now: () => number;
  onStateChange?: (state: CircuitState) => void;
}

export interface CircuitBreaker {
  /** Whether a call may go now. A true in half-open is the one probe: report its outcome. */
  admit(): boolean;
  succeeded(): void;
  failed(): void;
  state(): CircuitState;
}

export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  let state: CircuitState = 'closed';
  let failures = 0;
  let openedAt = 0;
  let probing = false;

  const moveTo = (next: CircuitState) => {
    if (next === state) return;
    state = next;
    options.onStateChange?.(next);
  };
  const open = () => {
    openedAt = options.now();
    probing = false;
    moveTo('open');
  };

  return {
    admit() {
      if (state === 'open' && options.now() - openedAt >= options.openMs) moveTo('half_open');
      if (state === 'closed') return true;
      if (state === 'half_open' && !probing) {
        probing = true;
        return true;
      }
      return false;
    },
    succeeded() {
      failures = 0;
      probing = false;
      moveTo('closed');
    },
    failed() {
      if (state === 'half_open') {
        open();
        return;
      }
      failures += 1;
      if (state === 'closed' && failures >= options.failureThreshold) open();
    },
    state: () => state,
  };
}

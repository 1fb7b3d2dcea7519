import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CircuitState } from './circuit-breaker.ts';

/*
 * What the operator sees of the account service. Labels come from closed sets: the contract's two
 * operations, the outcomes below and the circuit's states; never a customer or account id.
 */

export type AccountServiceOperation = 'list_accounts' | 'can_pay';

/** How one request to the service ended. */
export type AccountServiceOutcome = 'ok' | 'not_found' | 'timeout' | 'connection_failed' | 'service_error' | 'unexpected_status' | 'malformed_answer';

/** The circuit's state as a number Prometheus can graph and alert on. */
const CIRCUIT_VALUE: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };

export interface AccountServiceMetrics {
  request(operation: AccountServiceOperation, outcome: AccountServiceOutcome, seconds: number): void;
  retry(operation: AccountServiceOperation): void;
  /** A call refused without reaching the service because the circuit is open. */
  refused(operation: AccountServiceOperation): void;
  cacheHit(operation: AccountServiceOperation): void;
  circuit(state: CircuitState): void;
}

export function createAccountServiceMetrics(registry: Registry): AccountServiceMetrics {
  const requests = new Counter({
    name: 'moat_account_service_requests_total',
    help: 'Requests to the account service (each attempt, retries included) by operation and outcome',
    labelNames: ['operation', 'outcome'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'moat_account_service_request_duration_seconds',
    help: 'Account service request latency by operation',
    labelNames: ['operation'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const retries = new Counter({
    name: 'moat_account_service_retries_total',
    help: 'Account service requests retried after a timeout, connection failure or 5xx',
    labelNames: ['operation'],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'moat_account_service_circuit_refusals_total',
    help: 'Account service calls refused at once because the circuit breaker is open',
    labelNames: ['operation'],
    registers: [registry],
  });
  const cacheHits = new Counter({
    name: 'moat_account_service_cache_hits_total',
    help: 'Account service answers reused within the interaction that asked for them',
    labelNames: ['operation'],
    registers: [registry],
  });
  // A cluster is as bad as its worst worker.
  const circuit = new Gauge({
    name: 'moat_account_service_circuit_state',
    help: 'The account service circuit breaker: 0 closed, 1 half-open, 2 open',
    registers: [registry],
    aggregator: 'max',
  });
  circuit.set(CIRCUIT_VALUE.closed);
  return {
    request(operation, outcome, seconds) {
      requests.inc({ operation, outcome });
      duration.observe({ operation }, seconds);
    },
    retry: (operation) => retries.inc({ operation }),
    refused: (operation) => refused.inc({ operation }),
    cacheHit: (operation) => cacheHits.inc({ operation }),
    circuit: (state) => circuit.set(CIRCUIT_VALUE[state]),
  };
}

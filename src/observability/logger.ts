import { pino, type DestinationStream, type Logger } from 'pino';
import { requestContext } from './request-context.ts';

export type { Logger };

/*
 * Redaction by allowlist: a log line keeps only fields named here — identifiers, classes, counts,
 * Moat's own messages — and any other field is dropped, its name listed in `droppedFields` so the
 * omission shows. Request bodies, headers and query strings are never logged wholesale (the request
 * log picks named fields). A field added to a log call must be added here, deliberately.
 */
export const LOGGED_FIELDS: ReadonlySet<string> = new Set([
  // every line: what request, what happened, how it ended
  'reqId',
  'interactionId',
  'event',
  'outcome',
  'method',
  'path',
  'status',
  'durationMs',
  'endpoint',
  'err',
  // who: identifiers, never credentials (a customer appears by Moat's pseudonymous id only)
  'clientId',
  'orgId',
  'softwareId',
  'accountId',
  'consentId',
  'actor',
  'by',
  'entity',
  'clients',
  // certificates and keys: public facts
  'certificateThumbprint',
  'thumbprint',
  'serial',
  'notAfter',
  'daysLeft',
  'horizonDays',
  'kid',
  'alg',
  'issuer',
  'tokenLabel',
  // Moat's own words and classes
  'reason',
  'description',
  'detail',
  'kind',
  'source',
  'scope',
  'header',
  'remoteAddress',
  'auditType',
  'auditTypes',
  'events',
  'consentsRevoked',
  'expired',
  'until',
  'applied',
  'fields',
  // calls to the bank's systems (src/accounts): which operation, which attempt, the breaker's state
  'operation',
  'attempt',
  'circuit',
  // threat detection
  'signal',
  'severity',
  'expected',
  'seen',
  'score',
  'response',
  'flagId',
  // the process
  'mode',
  'port',
  'config',
  'storage',
  'pid',
  'exitCode',
  // a stop's drain deadline: how many connections it had to close
  'connections',
  'workers',
  'crashes',
  // lifecycle automation: trust files reloaded, notices delivered, the configuration's hash
  'file',
  'attempts',
  'configHash',
  'retryInMs',
  // Moat's own certificates (ACME): which one, for which names
  'certificate',
  'domains',
  // an audit record Postgres could not take, in full so it is not lost: identifiers and kinds only,
  // what the audit table itself holds (src/audit/audit-log.ts records no token, code or secret)
  'auditRecord',
  'queued',
]);

/*
 * A second line behind the allowlist, for allowed fields that carry objects (a detail record, a
 * config summary): a key named here is censored at any depth, and at the top level should one ever
 * be allowed. Done in the allowlist's own pass (censorValue) rather than by pino's `redact` with
 * `*.key` paths: those ran a redaction over every field of every line (16 of the 25 µs an
 * access-log line cost, issue 20), reached one level down only, and censored an error's `code`
 * (ECONNREFUSED, SQLSTATE 23505) that ERROR_FIELDS means to keep.
 */
const CENSORED_KEYS: ReadonlySet<string> = new Set([
  'password',
  'access_token',
  'refresh_token',
  'id_token',
  'code',
  'code_verifier',
  'client_assertion',
  'software_statement',
  'request',
  'assertion',
  'authorization',
  'cookie',
  'set-cookie',
  'dpop',
  'token',
  'd',
  'p',
  'q',
  'privateKey',
  'key',
]);
const CENSORED = '[redacted]';
/** How deep a field's objects are followed; what is deeper is left out, said so. */
const MAX_FIELD_DEPTH = 8;

/*
 * What an error object may say in a log line: its class, message, stack, codes and where it came
 * from — never the data it was working on. A driver's error carries that data: pg's and PGlite's
 * `detail` ("Key (id)=(…) already exists") and `where`, PGlite's `query` and `params` (for a failed
 * insert, the refresh token and its payload), ioredis's `command` (its arguments). Anything not
 * named here is dropped and listed in the error's `droppedFields`, as for a line's own fields.
 */
const ERROR_FIELDS: ReadonlySet<string> = new Set([
  'type',
  'message',
  'stack',
  'code',
  'errno',
  'syscall',
  'address',
  'port',
  'hostname',
  'status',
  'statusCode',
  'expose',
  'error',
  'error_description',
  'severity',
  'routine',
  'schema',
  'table',
  'column',
  'constraint',
  'dataType',
]);

/** How deep causes and aggregated errors are followed. */
const MAX_ERROR_DEPTH = 5;

/** The `err` serializer: an error through the allowlist above, its cause and aggregated errors too. */
export function serializeError(err: unknown, depth = 0): unknown {
  if (typeof err !== 'object' || err === null) return err;
  const kept: Record<string, unknown> = {};
  const dropped: string[] = [];
  const source = err as Record<string, unknown>;
  if (err instanceof Error) {
    kept.type = err.constructor.name;
    kept.message = err.message;
    kept.stack = err.stack;
  }
  for (const [name, value] of Object.entries(source)) {
    if (name === 'cause' || name === 'errors' || name in kept) continue;
    if (ERROR_FIELDS.has(name)) kept[name] = value;
    else dropped.push(name);
  }
  // `cause` is usually not enumerable (new Error(message, { cause })); read it either way.
  if (source.cause !== undefined) kept.cause = depth < MAX_ERROR_DEPTH ? serializeError(source.cause, depth + 1) : '[cause omitted]';
  if (Array.isArray(source.errors)) kept.errors = depth < MAX_ERROR_DEPTH ? source.errors.map((e) => serializeError(e, depth + 1)) : '[errors omitted]';
  if (dropped.length > 0) kept.droppedFields = dropped;
  return kept;
}

/**
 * Bytes of log lines gathered before one write(2): at info level every request writes one ~400-byte
 * access-log line, and one write per line was 6.5 % of Moat's CPU on introspection (issue 20,
 * bench/README.md); ~10 lines per write leaves a tenth of it.
 */
export const LOG_BATCH_BYTES = 4096;

/** At most this long a line waits for the batch to fill: a quiet server's lines still show within a second. */
export const LOG_FLUSH_MS = 250;

/**
 * A file descriptor or path written asynchronously (no write(2) on the request path) in batches of
 * LOG_BATCH_BYTES, or LOG_FLUSH_MS after the first line waiting, whichever comes first; pino flushes
 * what is left synchronously when the process exits.
 */
export function createLogDestination(dest: number | string): DestinationStream {
  return pino.destination({ dest, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS });
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  // Standard output by default, batched (createLogDestination).
  return pino(
    {
      level,
      base: { service: 'moat' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: serializeError },
      formatters: { log: keepLoggedFields },
      // x-fapi-interaction-id and the request id on every line written while serving a request.
      mixin() {
        const ctx = requestContext.getStore();
        return ctx === undefined
          ? {}
          : { reqId: ctx.requestId, interactionId: ctx.interactionId, ...(ctx.clientId === undefined ? {} : { clientId: ctx.clientId }) };
      },
    },
    destination ?? createLogDestination(1),
  );
}

function keepLoggedFields(object: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  const dropped: string[] = [];
  for (const [name, value] of Object.entries(object)) {
    if (!LOGGED_FIELDS.has(name)) dropped.push(name);
    else if (CENSORED_KEYS.has(name)) kept[name] = CENSORED;
    // `err` is its serializer's: an error is read through ERROR_FIELDS, not copied.
    else kept[name] = name === 'err' ? value : censorValue(value, 0);
  }
  if (dropped.length > 0) kept.droppedFields = dropped;
  return kept;
}

/**
 * A field's value with every CENSORED_KEYS key censored at any depth: primitives as they are (the
 * access log's fields are all primitives, so its lines copy nothing), errors through ERROR_FIELDS,
 * objects and arrays copied, never changed in place (they belong to the caller).
 */
function censorValue(value: unknown, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Error) return serializeError(value);
  if (depth >= MAX_FIELD_DEPTH) return '[deeper fields omitted]';
  if (Array.isArray(value)) return value.map((item) => censorValue(item, depth + 1));
  // Dates, buffers and URLs serialize themselves (toJSON), as strings or bytes; any other object,
  // a class's instance too, is written as its own keys, so those are censored like a plain object's.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value;
  const copy: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) copy[key] = CENSORED_KEYS.has(key) ? CENSORED : censorValue(inner, depth + 1);
  return copy;
}

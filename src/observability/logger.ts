import { pino, type DestinationStream, type Logger } from 'pino';
import { requestContext } from './request-context.ts';

export type { Logger };

/*
 * Redaction: request bodies, headers and query strings are never logged wholesale (the request log
 * picks named fields); these paths are a second line for objects handed to the logger by mistake.
 */
const REDACT_PATHS = [
  'password', '*.password',
  'access_token', '*.access_token', 'refresh_token', '*.refresh_token', 'id_token', '*.id_token',
  'code', '*.code', 'code_verifier', '*.code_verifier',
  'client_assertion', '*.client_assertion', 'software_statement', '*.software_statement',
  'request', '*.request', 'assertion', '*.assertion',
  'authorization', '*.authorization', 'headers.authorization', 'headers.cookie', '*.cookie', 'cookie',
  'headers["set-cookie"]', 'dpop', '*.dpop', 'token', '*.token',
  'd', '*.d', 'p', '*.p', 'q', '*.q', 'privateKey', '*.privateKey', 'key', '*.key',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({
    level,
    base: { service: 'moat' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    // x-fapi-interaction-id and the request id on every line written while serving a request.
    mixin() {
      const ctx = requestContext.getStore();
      return ctx === undefined ? {} : { reqId: ctx.requestId, interactionId: ctx.interactionId, ...(ctx.clientId === undefined ? {} : { clientId: ctx.clientId }) };
    },
  }, destination);
}

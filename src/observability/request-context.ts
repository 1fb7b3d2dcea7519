import { AsyncLocalStorage } from 'node:async_hooks';

/** What every log line written while serving a request carries (see logger.ts `mixin`). */
export interface RequestContext {
  requestId: string;
  interactionId: string;
  clientId?: string;
}

/**
 * One store per process is the point of AsyncLocalStorage: a log call deep in storage code learns
 * the request it serves without threading ids through every signature.
 */
export const requestContext = new AsyncLocalStorage<RequestContext>();
